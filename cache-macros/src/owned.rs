//! The owned body of functions that load in the background (`refresh_ahead`,
//! `stale`): a closure that, when the runtime calls it to load, copies
//! `self` and the arguments into an `async move` block around the function's
//! body, so that the load can outlive the call. A plain hit never calls it,
//! so hits copy nothing.
//!
//! In the block, `self` is a copy named `__cache_rt_self` (a reference to it
//! for `&self` methods, so the body sees the type it was written for): the
//! body's `self` expressions are renamed, also inside macro arguments, but
//! not in nested items (`fn`, `impl`) nor `use` trees, which have their own.
//! Borrowed arguments are borrowed again from owned copies. Only what the
//! body may name is copied (an identifier, or a `{name}` placeholder in a
//! string): an argument used in the key alone needs no copy, nor `Clone`.
//! When in doubt it is copied, and an unused copy is not warned about. What
//! cannot be copied is a compile error on the parameter, saying why and what
//! to do.

use crate::errors::Errors;
use crate::expand::respan;
use crate::signature::{FnInfo, Receiver};
use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use std::collections::HashSet;
use syn::spanned::Spanned;
use syn::visit::Visit;
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
    let mut body = block.clone();
    let mut rename = RenameSelf {
        to: self_copy.clone(),
        renamed: 0,
    };
    rename.visit_block_mut(&mut body);
    let named = names_in(block.to_token_stream());
    let mut copies = Vec::new();
    let mut borrows = Vec::new();
    // A `mut` binding is mutated in its copy, not in itself: using it
    // mutably here keeps rustc from calling the `mut` unneeded.
    let mut uses = Vec::new();
    match info.receiver.filter(|_| rename.renamed > 0) {
        Some((Receiver::Exclusive, span)) => errors.push(
            span,
            "a background refresh cannot copy `&mut self`: refresh_ahead and stale load after the call returns; take `&self`",
        ),
        Some((Receiver::Shared, span)) => {
            copies.push(quote_spanned!(span=> let #self_copy = #rt::__private::owned_self(self);));
            borrows.push(quote!(let #self_copy = &#self_copy;));
        }
        Some((Receiver::Owned(mutable), span)) => {
            let binding = if mutable {
                uses.push(quote!(let _ = &mut self;));
                quote!(mut #self_copy)
            } else {
                quote!(#self_copy)
            };
            copies.push(quote_spanned!(span=> let #binding = #rt::__private::owned_self(&self);));
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
        // The runtime's path on the parameter too, so that a bound the copy
        // fails is reported there, not on the attribute.
        let rt = respan(rt, ty_span);
        let (referent, exclusive) = match &param.ty {
            Type::Reference(r) => (Some(&*r.elem), r.mutability),
            _ => (None, None),
        };
        if let Some(mutability) = exclusive {
            errors.push(
                mutability.span,
                format!("a background refresh cannot copy `&mut` argument `{name}`: refresh_ahead and stale load after the call returns; take it by value or by `&`"),
            );
            continue;
        }
        if borrows_within(referent.unwrap_or(&param.ty)) {
            errors.push(
                ty_span,
                format!("a background refresh needs an owned copy of `{name}`, and its type borrows (a `&` or a lifetime inside it): take an owned type, such as `Option<String>` for `Option<&str>`"),
            );
            continue;
        }
        match referent {
            Some(Type::ImplTrait(_)) => errors.push(
                ty_span,
                format!("a background refresh cannot name the type of `{name}` to copy it: take a generic `&T` or an owned value"),
            ),
            Some(referent) => {
                copies.push(quote_spanned!(ty_span=>
                    let #name = #rt::__private::owned_ref::<#referent, _>(#name);
                ));
                borrows.push(quote_spanned!(ty_span=>
                    #[allow(unused_variables, unused_mut)]
                    let #binding: &#referent = ::core::borrow::Borrow::borrow(&#name);
                ));
            }
            None => copies.push(quote_spanned!(ty_span=>
                #[allow(unused_variables, unused_mut)]
                let #binding = #rt::__private::owned_arg(&#name);
            )),
        }
    }
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

/// `block` with `self` renamed to `to` (see [`RenameSelf`]).
pub(crate) fn rename_self(block: &Block, to: &Ident) -> Block {
    let mut block = block.clone();
    RenameSelf {
        to: to.clone(),
        renamed: 0,
    }
    .visit_block_mut(&mut block);
    block
}

/// Renames `self` in expressions, and in the arguments of macros (which
/// syn does not parse), but not in nested items nor `use` trees.
struct RenameSelf {
    to: Ident,
    renamed: usize,
}

impl VisitMut for RenameSelf {
    fn visit_expr_path_mut(&mut self, path: &mut syn::ExprPath) {
        if path.qself.is_none() && path.path.is_ident("self") {
            let span = path.path.segments[0].ident.span();
            path.path.segments[0].ident = Ident::new(&self.to.to_string(), span);
            self.renamed += 1;
        }
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        let (tokens, renamed) = replace_self(std::mem::take(&mut mac.tokens), &self.to);
        mac.tokens = tokens;
        self.renamed += renamed;
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// Replaces `self` by `to` in `tokens`, but not in paths (`self::item`);
/// how many it replaced. Each replacement keeps the span of its `self`.
pub(crate) fn replace_self(tokens: TokenStream, to: &Ident) -> (TokenStream, usize) {
    let mut out = Vec::new();
    let mut replaced = 0;
    let mut iter = tokens.into_iter().peekable();
    while let Some(tree) = iter.next() {
        match tree {
            TokenTree::Ident(ident) if ident == "self" => {
                let path = matches!(iter.peek(), Some(TokenTree::Punct(p)) if p.as_char() == ':');
                if path {
                    out.push(TokenTree::Ident(ident));
                } else {
                    out.push(TokenTree::Ident(Ident::new(&to.to_string(), ident.span())));
                    replaced += 1;
                }
            }
            TokenTree::Group(group) => {
                let (inner, n) = replace_self(group.stream(), to);
                let mut copy = Group::new(group.delimiter(), inner);
                copy.set_span(group.span());
                out.push(TokenTree::Group(copy));
                replaced += n;
            }
            other => out.push(other),
        }
    }
    (out.into_iter().collect(), replaced)
}

/// Every identifier in `tokens`, at any depth, and every `{name}` or
/// `{name:...}` placeholder in a string literal (format strings capture
/// variables by name).
fn names_in(tokens: TokenStream) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut stack = vec![tokens];
    while let Some(tokens) = stack.pop() {
        for tree in tokens {
            match tree {
                TokenTree::Ident(ident) => {
                    names.insert(ident.to_string());
                }
                TokenTree::Literal(literal) => {
                    if let Ok(syn::Lit::Str(s)) =
                        syn::parse2::<syn::Lit>(literal.into_token_stream())
                    {
                        names.extend(placeholders(&s.value()));
                    }
                }
                TokenTree::Group(group) => stack.push(group.stream()),
                TokenTree::Punct(_) => {}
            }
        }
    }
    names
}

/// The names in `{name}` and `{name:spec}` placeholders of a format string.
fn placeholders(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(escaped) = rest.strip_prefix('{') {
            rest = escaped;
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 && rest[end..].starts_with(['}', ':']) {
            names.push(rest[..end].to_owned());
        }
    }
    names
}

/// Whether a type holds a borrow inside it: a reference, or a lifetime other
/// than `'static`.
fn borrows_within(ty: &Type) -> bool {
    struct Find(bool);
    impl Visit<'_> for Find {
        fn visit_type_reference(&mut self, _: &syn::TypeReference) {
            self.0 = true;
        }
        fn visit_lifetime(&mut self, lifetime: &syn::Lifetime) {
            if lifetime.ident != "static" {
                self.0 = true;
            }
        }
    }
    let mut find = Find(false);
    find.visit_type(ty);
    find.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renamed(code: &str) -> (String, usize) {
        let mut block: Block = syn::parse_str(code).unwrap();
        let mut rename = RenameSelf {
            to: Ident::new("me", Span::call_site()),
            renamed: 0,
        };
        rename.visit_block_mut(&mut block);
        (block.to_token_stream().to_string(), rename.renamed)
    }

    #[test]
    fn self_is_renamed_in_expressions_and_macros_only() {
        let (code, n) = renamed("{ self.db.get(&self, id).await }");
        assert_eq!(
            (code.as_str(), n),
            ("{ me . db . get (& me , id) . await }", 2)
        );
        let (code, n) = renamed("{ self::helper(self) + Self::CONST }");
        assert_eq!(
            (code.as_str(), n),
            ("{ self :: helper (me) + Self :: CONST }", 1)
        );
        let (code, n) = renamed("{ format!(\"{}\", self.name) }");
        assert_eq!((code.as_str(), n), ("{ format ! (\"{}\" , me . name) }", 1));
        let (code, n) = renamed(
            "{ use std::fmt::{self, Write}; struct H; impl H { fn get(&self) -> u8 { self.x } } 1 }",
        );
        assert_eq!(
            n, 0,
            "nested items and use trees keep their own self: {code}"
        );
    }

    #[test]
    fn placeholders_are_names_plain_words_are_not() {
        let names = names_in(
            r#"{ let v = db.get(id).await; format!("{name}:{v:>3} loaded by self, {{literal}}") }"#
                .parse()
                .unwrap(),
        );
        for name in ["v", "db", "get", "id", "name", "format"] {
            assert!(names.contains(name), "{name} in {names:?}");
        }
        for word in ["loaded", "self", "literal"] {
            assert!(!names.contains(word), "{word} in {names:?}");
        }
    }

    #[test]
    fn borrows_inside_types_are_found() {
        let borrows = |ty: &str| borrows_within(&syn::parse_str(ty).unwrap());
        assert!(borrows("Option<&str>"));
        assert!(borrows("Cow<'a, str>"));
        assert!(!borrows("Cow<'static, str>"));
        assert!(!borrows("Vec<String>"));
        assert!(!borrows("str"));
    }
}
