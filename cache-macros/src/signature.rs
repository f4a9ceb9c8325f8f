//! What the expansion needs to know about the annotated function: its
//! parameters (by name) and the shape of its return type.

use crate::errors::Errors;
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, Pat, PathArguments, ReturnType, Signature, Type};

/// The return shapes the runtime knows (see `cache_runtime::__private`).
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Shape {
    Plain,
    Opt,
    Res,
    ResOpt,
}

impl Shape {
    pub(crate) fn marker(self) -> Ident {
        let name = match self {
            Shape::Plain => "Plain",
            Shape::Opt => "Opt",
            Shape::Res => "Res",
            Shape::ResOpt => "ResOpt",
        };
        Ident::new(name, Span::call_site())
    }
}

/// A parameter other than the receiver.
pub(crate) struct Param {
    /// `None` for patterns that bind no single name (`(a, b): (u8, u8)`).
    pub(crate) name: Option<Ident>,
    /// Bound with `mut`.
    pub(crate) mutable: bool,
    pub(crate) span: Span,
    pub(crate) ty: Type,
}

/// How a method takes `self`.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Receiver {
    /// `&self`, `self: &Self`.
    Shared,
    /// `&mut self`, `self: &mut Self`.
    Exclusive,
    /// `self`, `mut self`, `self: Arc<Self>` and other owned forms; `true`
    /// when bound with `mut`.
    Owned(bool),
}

pub(crate) struct FnInfo {
    pub(crate) has_receiver: bool,
    /// How `self` is taken, with the span of the receiver.
    pub(crate) receiver: Option<(Receiver, Span)>,
    /// The receiver is `&self` (or `self: &Self`): borrowing a cache from it
    /// does not conflict with the body, which only copies the reference.
    pub(crate) shared_receiver: bool,
    pub(crate) params: Vec<Param>,
    pub(crate) shape: Shape,
    /// The cached type (`T` of `Result<Option<T>, E>`), when written out.
    pub(crate) value_ty: Option<Type>,
}

fn strip(ty: &Type) -> &Type {
    match ty {
        Type::Paren(p) => strip(&p.elem),
        Type::Group(g) => strip(&g.elem),
        other => other,
    }
}

/// `Some(args)` when `ty` is a path whose last segment is `name`.
fn generic_args<'a>(ty: &'a Type, name: &str) -> Option<Vec<&'a Type>> {
    let Type::Path(path) = strip(ty) else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    Some(match &last.arguments {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

/// Classifies a return type by its last path segment: `Option<T>`,
/// `Result<T, ..>` (also `io::Result<T>` and other aliases named `Result`),
/// `Result<Option<T>, ..>`, else a plain `T`.
pub(crate) fn shape_of(ty: &Type) -> (Shape, Option<&Type>) {
    if let Some(args) = generic_args(ty, "Result") {
        let Some(ok) = args.first().copied() else {
            return (Shape::Res, None);
        };
        if let Some(inner) = generic_args(ok, "Option") {
            return (Shape::ResOpt, inner.first().copied());
        }
        return (Shape::Res, Some(ok));
    }
    if let Some(args) = generic_args(ty, "Option") {
        return (Shape::Opt, args.first().copied());
    }
    (Shape::Plain, Some(ty))
}

/// Why a type cannot be stored, if it cannot.
fn uncacheable(ty: &Type) -> Option<&'static str> {
    match strip(ty) {
        Type::Tuple(t) if t.elems.is_empty() => {
            Some("nothing to cache: the function returns `()`")
        }
        Type::Reference(_) => Some(
            "a borrowed value cannot be cached: return an owned type (`String` instead of `&str`, `Vec<T>` instead of `&[T]`)",
        ),
        Type::ImplTrait(_) => Some("`impl Trait` cannot be cached: return a concrete type"),
        Type::TraitObject(_) => Some("a trait object cannot be cached: return a concrete type"),
        Type::Never(_) => Some("nothing to cache: the function never returns"),
        _ => None,
    }
}

/// Reads the signature; `cached` adds the checks of `#[cached]`.
pub(crate) fn analyse(sig: &Signature, attr: &str, cached: bool, errors: &mut Errors) -> FnInfo {
    if sig.asyncness.is_none() {
        errors.push(
            sig.fn_token.span,
            format!("#[{attr}] requires an `async fn`: the `async` keyword is missing from the function declaration"),
        );
    }
    let mut has_receiver = false;
    let mut shared_receiver = false;
    let mut receiver = None;
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                has_receiver = true;
                shared_receiver = matches!(&*r.ty, Type::Reference(t) if t.mutability.is_none());
                let kind = match &*r.ty {
                    Type::Reference(t) if t.mutability.is_none() => Receiver::Shared,
                    Type::Reference(_) => Receiver::Exclusive,
                    _ => Receiver::Owned(r.mutability.is_some()),
                };
                receiver = Some((kind, r.self_token.span));
            }
            FnArg::Typed(pt) => {
                let (name, mutable) = match &*pt.pat {
                    Pat::Ident(p) if p.subpat.is_none() => {
                        (Some(p.ident.clone()), p.mutability.is_some())
                    }
                    _ => (None, false),
                };
                params.push(Param {
                    name,
                    mutable,
                    span: pt.pat.span(),
                    ty: (*pt.ty).clone(),
                });
            }
        }
    }
    let (shape, value_ty) = match &sig.output {
        ReturnType::Default => {
            if cached {
                errors.push(
                    sig.ident.span(),
                    "nothing to cache: the function returns `()`; #[cached] needs a return value",
                );
            }
            (Shape::Plain, None)
        }
        ReturnType::Type(_, ty) => {
            let (shape, value) = shape_of(ty);
            if cached {
                if let Some(why) = value.and_then(uncacheable) {
                    errors.push(value.map_or(ty.span(), Spanned::span), why);
                }
            }
            (shape, value.cloned())
        }
    };
    FnInfo {
        has_receiver,
        receiver,
        shared_receiver,
        params,
        shape,
        value_ty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(ty: &str) -> (Shape, Option<String>) {
        let ty: Type = syn::parse_str(ty).unwrap();
        let (s, v) = shape_of(&ty);
        (s, v.map(|t| quote::quote!(#t).to_string().replace(' ', "")))
    }

    #[test]
    fn recognises_the_four_shapes() {
        assert_eq!(shape("User"), (Shape::Plain, Some("User".into())));
        assert_eq!(shape("Option<User>"), (Shape::Opt, Some("User".into())));
        assert_eq!(shape("Result<User, E>"), (Shape::Res, Some("User".into())));
        assert_eq!(
            shape("std::io::Result<Vec<u8>>"),
            (Shape::Res, Some("Vec<u8>".into()))
        );
        assert_eq!(
            shape("Result<Option<User>, E>"),
            (Shape::ResOpt, Some("User".into()))
        );
        assert_eq!(
            shape("anyhow::Result<std::option::Option<u8>>"),
            (Shape::ResOpt, Some("u8".into()))
        );
        assert_eq!(
            shape("Vec<Option<u8>>"),
            (Shape::Plain, Some("Vec<Option<u8>>".into()))
        );
    }
}
