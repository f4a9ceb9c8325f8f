//! The attribute macros of `cache-runtime`: `#[cached]` and `#[invalidates]`.
//!
//! Use them through `cache_runtime`, which re-exports them; the README and
//! `cache_runtime`'s docs describe every argument. This crate only parses
//! and checks attributes and rewrites the function body into one call of
//! the runtime; the caching itself lives in `cache-runtime`.

mod args;
mod duration;
mod errors;
mod expand;
mod handle;
mod owned;
mod signature;
mod suggest;
mod template;
mod write_behind;

use errors::Errors;
use proc_macro::TokenStream;
use quote::quote;

/// Caches an `async fn`'s result under a key built from its arguments.
///
/// `#[cached(strategy = "aside", key = "user:<id>", ttl = 300, null_ttl = 30,
/// lock = true, lease_ttl = "5s", lease_wait = "6s", cache = self.cache)]`;
/// every argument is optional. See `cache_runtime`'s README for details.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_attr(attr.into(), item.into(), "cached").into()
}

/// Deletes cache keys after an `async fn` succeeds.
///
/// `#[invalidates("user:<id>", "users:all", cache = self.cache)]`.
#[proc_macro_attribute]
pub fn invalidates(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_attr(attr.into(), item.into(), "invalidates").into()
}

fn expand_attr(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
    name: &str,
) -> proc_macro2::TokenStream {
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
                format!("#[{name}] applies to an `async fn` with a body"),
            )
            .to_compile_error();
            return quote!(#error #item);
        }
    };
    let mut errors = Errors::default();
    let items = args::items(attr).unwrap_or_else(|e| {
        errors.add(e);
        Vec::new()
    });
    let expanded = if name == "cached" {
        let args = args::CachedArgs::from_items(items, &mut errors);
        // A write-behind function returns `Result<(), E>`: nothing of its
        // return value is cached.
        let caches_result = args.strategy != args::Strategy::WriteBehind;
        let info = signature::analyse(&func.sig, name, caches_result, &mut errors);
        expand::cached(&args, &func, &info, &mut errors)
    } else {
        let info = signature::analyse(&func.sig, name, false, &mut errors);
        let args =
            args::InvalidatesArgs::from_items(items, &mut errors, proc_macro2::Span::call_site());
        expand::invalidates(&args, &func, &info, &mut errors)
    };
    if errors.is_empty() {
        expanded
    } else {
        // The function as written, so the rest of the crate still compiles
        // and one mistake gives one error.
        let compile_errors = errors.to_compile_errors();
        quote!(#compile_errors #func)
    }
}
