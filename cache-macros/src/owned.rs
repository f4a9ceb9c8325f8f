//! The owned body of functions that load in the background (`refresh_ahead`,
//! `stale`): a closure that, when the runtime calls it to load, copies
//! `self` and the arguments into an `async move` block around the function's
//! body, so that the load can outlive the call. A plain hit never calls it,
//! so hits copy nothing.
//!
//! In the block, `self` is a copy named `__cache_rt_self` (a reference to it
//! for `&self` methods, so the body sees the type it was written for), and
//! borrowed arguments are borrowed again from owned copies. Only what the
//! body may name is copied (an identifier, or a word in a literal, as in
//! `format!("{id}")`): an argument used in the key alone needs no copy, nor
//! `Clone`. When in doubt it is copied, and an unused copy is not warned
//! about. What cannot be copied is a compile error on the parameter, saying
//! why and what to do.

use crate::errors::Errors;
use crate::signature::{FnInfo, Receiver};
use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Block, Type};

/// The name `self` is copied to inside the owned body.
const SELF_COPY: &str = "__cache_rt_self";

/// `{ uses; || { copies; async move { re-borrows; body } } }`.
pub(crate) fn owned_body(
    rt: &TokenStream,
    info: &FnInfo,
    block: &Block,
    errors: &mut Errors,
) -> TokenStream {
    let self_copy = Ident::new(SELF_COPY, Span::call_site());
    let mut copies = Vec::new();
    let mut borrows = Vec::new();
    // A `mut` parameter is mutated in its copy, not in itself: using it
    // mutably here keeps rustc from calling the `mut` unneeded.
    let mut uses = Vec::new();
    let named = names_in(block.to_token_stream());
    let receiver = info.receiver.filter(|_| named.contains("self"));
    match receiver {
        Some((Receiver::Exclusive, span)) => errors.push(
            span,
            "a background refresh cannot copy `&mut self`: refresh_ahead and stale load after the call returns; take `&self`",
        ),
        Some((Receiver::Shared, span)) => {
            copies.push(quote_spanned!(span=> let #self_copy = #rt::__private::owned_self(self);));
            borrows.push(quote!(let #self_copy = &#self_copy;));
        }
        Some((Receiver::Owned, span)) => {
            copies.push(quote_spanned!(span=> let #self_copy = #rt::__private::owned_self(&self);));
        }
        None => {}
    }
    for param in &info.params {
        if param
            .name
            .as_ref()
            .is_some_and(|name| !named.contains(&name.to_string()))
        {
            continue;
        }
        let Some(name) = &param.name else {
            errors.push(
                param.span,
                "a background refresh needs each argument by name to copy it: bind this one to a name",
            );
            continue;
        };
        let binding = if param.mutable {
            uses.push(quote!(let _ = &mut #name;));
            quote!(mut #name)
        } else {
            quote!(#name)
        };
        let ty_span = param.ty.span();
        match &param.ty {
            Type::Reference(r) if r.mutability.is_some() => errors.push(
                ty_span,
                format!("a background refresh cannot copy `&mut` argument `{name}`: refresh_ahead and stale load after the call returns; take it by value or by `&`"),
            ),
            Type::Reference(r) if matches!(&*r.elem, Type::ImplTrait(_)) => errors.push(
                ty_span,
                format!("a background refresh cannot name the type of `{name}` to copy it: take a generic `&T` or an owned value"),
            ),
            Type::Reference(r) => {
                let mut referent = (*r.elem).clone();
                EraseLifetimes.visit_type_mut(&mut referent);
                copies.push(quote_spanned!(ty_span=>
                    let #name = #rt::__private::owned_ref::<#referent>(#name);
                ));
                borrows.push(quote_spanned!(ty_span=>
                    #[allow(unused_variables, unused_mut)]
                    let #binding: &#referent = ::core::borrow::Borrow::borrow(&#name);
                ));
            }
            _ => copies.push(quote_spanned!(ty_span=>
                #[allow(unused_variables, unused_mut)]
                let #binding = #rt::__private::owned_arg(&#name);
            )),
        }
    }
    let body = replace_self(block.to_token_stream(), &self_copy);
    quote! {
        {
            #(#uses)*
            || {
                #(#copies)*
                async move {
                    #(#borrows)*
                    #body
                }
            }
        }
    }
}

/// Every identifier in `tokens`, at any depth, and every word inside a
/// literal (format strings name variables: `"{id}"`).
fn names_in(tokens: TokenStream) -> std::collections::HashSet<String> {
    let mut names = std::collections::HashSet::new();
    let mut stack = vec![tokens];
    while let Some(tokens) = stack.pop() {
        for tree in tokens {
            match tree {
                TokenTree::Ident(ident) => {
                    names.insert(ident.to_string());
                }
                TokenTree::Literal(literal) => names.extend(
                    literal
                        .to_string()
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .filter(|word| !word.is_empty())
                        .map(str::to_owned),
                ),
                TokenTree::Group(group) => stack.push(group.stream()),
                TokenTree::Punct(_) => {}
            }
        }
    }
    names
}

/// Replaces `self` by `with` in `tokens`, but not in paths (`self::item`).
/// Each replacement keeps the span of the `self` it replaces.
pub(crate) fn replace_self(tokens: TokenStream, with: &Ident) -> TokenStream {
    let mut out = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(tree) = iter.next() {
        match tree {
            TokenTree::Ident(ident) if ident == "self" => {
                let path = matches!(iter.peek(), Some(TokenTree::Punct(p)) if p.as_char() == ':');
                if path {
                    out.push(TokenTree::Ident(ident));
                } else {
                    out.push(TokenTree::Ident(Ident::new(
                        &with.to_string(),
                        ident.span(),
                    )));
                }
            }
            TokenTree::Group(group) => {
                let mut replaced =
                    Group::new(group.delimiter(), replace_self(group.stream(), with));
                replaced.set_span(group.span());
                out.push(TokenTree::Group(replaced));
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

/// Turns every lifetime of a type into `'_`, so that it can be named again
/// inside the owned body.
struct EraseLifetimes;

impl VisitMut for EraseLifetimes {
    fn visit_lifetime_mut(&mut self, lifetime: &mut syn::Lifetime) {
        lifetime.ident = Ident::new("_", lifetime.ident.span());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replaced(code: &str) -> String {
        let tokens: TokenStream = code.parse().unwrap();
        let with = Ident::new("me", Span::call_site());
        replace_self(tokens, &with).to_string()
    }

    #[test]
    fn self_is_replaced_except_in_paths() {
        assert_eq!(
            replaced("{ self.db.get(&self, id).await }"),
            "{ me . db . get (& me , id) . await }"
        );
        assert_eq!(
            replaced("{ self::helper(self) + Self::CONST }"),
            "{ self :: helper (me) + Self :: CONST }"
        );
        assert_eq!(
            replaced("{ format!(\"{}\", self.name) }"),
            "{ format ! (\"{}\" , me . name) }"
        );
    }

    #[test]
    fn names_include_words_in_literals() {
        let names = names_in(
            r#"{ let v = db.get(id).await; format!("{name}:{v:>3}") }"#
                .parse()
                .unwrap(),
        );
        for name in ["v", "db", "get", "id", "name", "format"] {
            assert!(names.contains(name), "{name} in {names:?}");
        }
        assert!(!names.contains("other"));
    }

    #[test]
    fn lifetimes_are_erased() {
        let mut ty: Type = syn::parse_str("Cow<'a, [&'static str]>").unwrap();
        EraseLifetimes.visit_type_mut(&mut ty);
        assert_eq!(ty.to_token_stream().to_string(), "Cow < '_ , [& '_ str] >");
    }
}
