//! `handle = NAME` on `strategy = "read_through"`: the one item the
//! attribute adds beside the function, under the name the user gave, through
//! which other code reads the function's key space and invalidates it by
//! key arguments, without naming the function.
//!
//! - On a function without `self`: `const NAME: ReadThrough<K, R>`, where
//!   `K` is the argument (a tuple of them when there are several). `get`
//!   calls the function; `invalidate` builds the same key and deletes it.
//! - On a `&self` method: `fn NAME(&self) -> ReadThroughOn<'_, Self, K, R>`.
//!
//! A constant cannot be generic nor hold borrowed arguments, and must build
//! the function's key without calling it: so the handle takes a function
//! that is not generic, has owned arguments, and an explicit `key`.

use crate::args::CachedArgs;
use crate::errors::Errors;
use crate::expand::{cache_ref, internal, template_key};
use crate::owned::replace_self;
use crate::signature::{FnInfo, Receiver};
use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, ReturnType, Type};

pub(crate) fn handle(
    rt: &TokenStream,
    args: &CachedArgs,
    func: &ItemFn,
    info: &FnInfo,
    errors: &mut Errors,
) -> TokenStream {
    let Some(name) = &args.handle else {
        return quote!();
    };
    let sig = &func.sig;
    if !sig.generics.params.is_empty() {
        errors.push(
            sig.generics.span(),
            "a read-through handle cannot be generic: it is one item for one key space",
        );
    }
    let Some(template) = &args.key else {
        errors.push(
            name.span(),
            "a read-through handle needs an explicit `key = \"...\"`, so that it builds the function's keys",
        );
        return quote!();
    };
    let method = match info.receiver {
        None => false,
        Some((Receiver::Shared, _)) => true,
        Some((_, span)) => {
            errors.push(
                span,
                "a read-through handle reads through `&self` methods or functions without `self`",
            );
            return quote!();
        }
    };
    let mut names = Vec::new();
    let mut types = Vec::new();
    for param in &info.params {
        match (&param.name, &param.ty) {
            (None, _) => errors.push(
                param.span,
                "a read-through handle passes its key arguments by name: bind this one to a name",
            ),
            (_, Type::Reference(_)) => errors.push(
                param.ty.span(),
                "a read-through handle takes its key arguments by value: make this an owned type (`String` for `&str`)",
            ),
            (_, Type::ImplTrait(_)) => errors.push(
                param.ty.span(),
                "a read-through handle names its key arguments' types: `impl Trait` has none",
            ),
            (Some(name), ty) => {
                names.push(name.clone());
                types.push(ty.clone());
            }
        }
    }
    let ret = match &sig.output {
        ReturnType::Type(_, ty) => quote!(#ty),
        ReturnType::Default => quote!(()),
    };
    let (key_type, key_pattern) = match (names.as_slice(), types.as_slice()) {
        ([name], [ty]) => (quote!(#ty), quote!(#name)),
        _ => (quote!((#(#types),*)), quote!((#(#names),*))),
    };
    let cache = internal("__cache_rt_cache");
    let on = Ident::new("__cache_rt_self", Span::call_site());
    let mut cache_expr = cache_ref(rt, args.cache.as_ref());
    let mut key_expr = template_key(rt, &cache, template, info, errors);
    if method {
        cache_expr = replace_self(cache_expr, &on).0;
        key_expr = replace_self(key_expr, &on).0;
    }
    let invalidate_body = quote! {
        ::std::boxed::Box::pin(async move {
            let #cache: &#rt::__private::Cache = #cache_expr;
            #rt::__private::invalidate_key(#cache, #key_expr).await
        })
    };
    let vis = &func.vis;
    let function = &sig.ident;
    let doc = format!(
        "Reads through [`{function}`]: `get` returns its cached value or runs it, `invalidate` deletes the entry of its key (`{}`). Defined by the `handle` of its `#[cached]`.",
        template.value()
    );
    // Called by its bare name, which resolves for a free function; inside an
    // `impl` (no `self`) it does not, and rustc says so on `handle = NAME`.
    let call = quote_spanned!(name.span()=> #function(#(#names),*));
    if method {
        quote! {
            #[doc = #doc]
            #vis fn #name<'__cache_rt>(&'__cache_rt self)
                -> #rt::ReadThroughOn<'__cache_rt, Self, #key_type, #ret>
            {
                #rt::ReadThroughOn::new(
                    self,
                    |#on: &'__cache_rt Self, #key_pattern| ::std::boxed::Box::pin(#on.#function(#(#names),*)),
                    |#on: &'__cache_rt Self, #key_pattern| #invalidate_body,
                )
            }
        }
    } else {
        quote! {
            #[doc = #doc]
            #vis const #name: #rt::ReadThrough<#key_type, #ret> = #rt::ReadThrough::new(
                |#key_pattern| ::std::boxed::Box::pin(#call),
                |#key_pattern| #invalidate_body,
            );
        }
    }
}
