//! Code generation: the function's signature stays as written; its body
//! becomes a key, then one runtime call with the original body as an
//! `async move` block. Internal bindings use `Span::mixed_site()`, so they
//! can neither see nor shadow the user's names.

use crate::args::{CachedArgs, InvalidatesArgs, RefreshArg, Strategy};
use crate::errors::Errors;
use crate::signature::{FnInfo, Param};
use crate::suggest::did_you_mean;
use crate::template::{self, Segment};
use crate::{handle, owned, write_behind};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Ident, ItemFn, LitStr, Path};

pub(crate) fn internal(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

fn runtime(krate: Option<&Path>) -> TokenStream {
    krate.map_or_else(|| quote!(::cache_runtime), |p| quote!(#p))
}

/// `tokens` with every top-level token at `span` (a group's contents keep
/// theirs). An expression's span is that of its first token on stable, so
/// this is how a whole generated expression lands on the user's code.
pub(crate) fn respan(tokens: &TokenStream, span: Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|mut t| {
            t.set_span(span);
            t
        })
        .collect()
}

pub(crate) fn cache_ref(rt: &TokenStream, cache: Option<&Expr>) -> TokenStream {
    match cache {
        // Deref coercion takes `self.cache`, `&Cache`, `Arc<Cache>`, a
        // `LazyLock<Cache>` static...; a wrong type errs on the expression.
        Some(expr) => quote_spanned!(expr.span()=> &(#expr)),
        None => quote!(#rt::__private::default_cache()),
    }
}

/// Binds `cache` to the `&Cache`. When the expression may borrow from
/// something the body moves (`&mut self`, `self: Arc<Self>`, an argument),
/// it binds a clone instead (one reference count), so that the borrow ends
/// before the body moves into the `async move` block. `&self` methods and
/// the default cache borrow: nothing on their hit path but the lookup.
fn bind_cache(rt: &TokenStream, cache: &Ident, expr: Option<&Expr>, info: &FnInfo) -> TokenStream {
    let cache_expr = cache_ref(rt, expr);
    let borrow = quote!(let #cache: &#rt::__private::Cache = #cache_expr;);
    if expr.is_none() || info.shared_receiver {
        borrow
    } else {
        quote! {
            #borrow
            let #cache = &#rt::__private::Cache::clone(#cache);
        }
    }
}

/// The names a placeholder may start with.
fn names(info: &FnInfo) -> Vec<String> {
    let mut names: Vec<String> = info
        .params
        .iter()
        .filter_map(|p| p.name.as_ref())
        .map(Ident::to_string)
        .collect();
    if info.has_receiver {
        names.insert(0, "self".into());
    }
    names
}

/// `KeyBuilder::new(prefix).lit(..).part(&..)...finish()` for a template.
pub(crate) fn template_key(
    rt: &TokenStream,
    cache: &Ident,
    lit: &LitStr,
    info: &FnInfo,
    errors: &mut Errors,
) -> TokenStream {
    let parsed = match template::parse(&lit.value()) {
        Ok(t) => t,
        Err(problems) => {
            for p in problems {
                errors.push(lit.span(), format!("invalid key template: {}", p.message));
            }
            return quote!(::std::string::String::new());
        }
    };
    let known = names(info);
    let span = lit.span();
    let mut calls = Vec::new();
    for segment in parsed.segments {
        match segment {
            Segment::Lit(text) => calls.push(quote!(.lit(#text))),
            Segment::Hole(hole) => {
                let root = &hole.path[0];
                if !known.contains(root) {
                    let message = if root == "self" {
                        format!(
                            "`{}` uses `self`, but the function has no `self` parameter",
                            hole.text
                        )
                    } else if known.is_empty() {
                        format!(
                            "unknown parameter `{root}` in `{}`: the function has no parameters",
                            hole.text
                        )
                    } else {
                        format!(
                            "unknown parameter `{root}` in `{}`{}; the parameters are: {}",
                            hole.text,
                            did_you_mean(root, known.iter().map(String::as_str)),
                            known.join(", ")
                        )
                    };
                    errors.push(span, message);
                    continue;
                }
                let root = Ident::new(root, span);
                let fields = hole.path[1..].iter().map(|f| match f.parse::<u32>() {
                    Ok(i) => {
                        let index = syn::Index { index: i, span };
                        quote_spanned!(span=> .#index)
                    }
                    Err(_) => {
                        let field = Ident::new(f, span);
                        quote_spanned!(span=> .#field)
                    }
                });
                calls.push(quote_spanned!(span=> .part(&#root #(#fields)*)));
            }
        }
    }
    quote!(#rt::__private::KeyBuilder::new(#cache.prefix()) #(#calls)* .finish())
}

/// The default key: the function's path with its generic arguments (its
/// own, its `impl Trait` arguments' and its impl block's), then every
/// argument but `self`, separated by `:`.
fn default_key(rt: &TokenStream, cache: &Ident, info: &FnInfo, errors: &mut Errors) -> TokenStream {
    let mut calls = Vec::new();
    for Param { name, span, .. } in &info.params {
        match name {
            Some(name) => calls.push(quote_spanned!(*span=> .lit(":").part(&#name))),
            None => errors.push(
                *span,
                "this argument has no single name, so it cannot be part of the default key: bind it to a name, or give a `key`",
            ),
        }
    }
    // A closure's type name is its enclosing function's path with every
    // generic argument filled in (`app::Repo<u8>::get::{{closure}}`), where
    // a fn item declared here would show `Repo<_>` and no `impl Trait`
    // arguments at all. `function` drops the `::{{closure}}` segments.
    quote! {
        #rt::__private::KeyBuilder::new(#cache.prefix())
            .function(::core::any::type_name_of_val(&|| ()))
            #(#calls)*
            .finish()
    }
}

fn emit(func: &ItemFn, body: TokenStream) -> TokenStream {
    let ItemFn {
        attrs, vis, sig, ..
    } = func;
    quote!(#(#attrs)* #vis #sig { #body })
}

/// `#[cached]`.
pub(crate) fn cached(
    args: &CachedArgs,
    func: &ItemFn,
    info: &FnInfo,
    errors: &mut Errors,
) -> TokenStream {
    let rt = runtime(args.krate.as_ref());
    let cache = internal("__cache_rt_cache");
    let key = internal("__cache_rt_key");
    let bind_cache = bind_cache(&rt, &cache, args.cache.as_ref(), info);
    let key_expr = match &args.key {
        Some(lit) => template_key(&rt, &cache, lit, info, errors),
        None => default_key(&rt, &cache, info, errors),
    };
    let fn_name = func.sig.ident.to_string();
    let mut spec =
        quote!(#rt::__private::Spec::new(::core::concat!(::core::module_path!(), "::", #fn_name)));
    if let Some(ms) = args.ttl_ms {
        spec.extend(quote!(.ttl_ms(#ms)));
    }
    if let Some(ms) = args.null_ttl_ms {
        spec.extend(quote!(.null_ttl_ms(#ms)));
    }
    if let Some(lock) = args.lock {
        spec.extend(quote!(.lock(#lock)));
    }
    if let Some(ms) = args.lease_ttl_ms {
        spec.extend(quote!(.lease_ttl_ms(#ms)));
    }
    if let Some(ms) = args.lease_wait_ms {
        spec.extend(quote!(.lease_wait_ms(#ms)));
    }
    if let Some(ms) = args.stale_ms {
        spec.extend(quote!(.stale_ms(#ms)));
    }
    if args.strategy == Strategy::RefreshAhead {
        let policy = match args.refresh.unwrap_or(RefreshArg::Fraction(0.8)) {
            RefreshArg::Fraction(f) => quote!(Fraction(#f)),
            RefreshArg::AfterMs(ms) => quote!(After(::core::time::Duration::from_millis(#ms))),
            RefreshArg::XFetch => {
                let beta = args.beta.unwrap_or(1.0);
                quote!(XFetch { beta: #beta })
            }
        };
        spec.extend(quote!(.refresh(#rt::__private::Refresh::#policy)));
    }
    if args.strategy == Strategy::WriteBehind {
        let (body, handle) = write_behind::expand(&rt, args, func, info, errors);
        let function = emit(func, body);
        return quote!(#function #handle);
    }
    let shape = info.shape.marker();
    let block = &func.block;
    let call = if args.loads_in_background() {
        let make = owned::owned_body(&rt, info, block, errors);
        quote! {
            #rt::__private::read::<#rt::__private::#shape, _, _, _>(#cache, #key, #spec, #make).await
        }
    } else if args.strategy == Strategy::WriteThrough {
        match &args.version {
            Some(expr) => {
                let version = version_fn(&rt, expr, info.value_ty.as_ref(), errors);
                quote! {
                    #rt::__private::write_through_versioned::<#rt::__private::#shape, _, _, _>(#cache, #key, #spec, #version, async move #block).await
                }
            }
            None => quote! {
                #rt::__private::write_through::<#rt::__private::#shape, _, _>(#cache, #key, #spec, async move #block).await
            },
        }
    } else {
        quote! {
            #rt::__private::aside::<#rt::__private::#shape, _, _>(#cache, #key, #spec, async move #block).await
        }
    };
    // The bound check sits on the return type, so that a value that cannot
    // be cached is reported there rather than inside generated code. The
    // runtime call (its own tokens, not the body's) carries the same span:
    // rustc then folds the call's identical serde bounds into the errors
    // already reported there instead of repeating them on the attribute.
    let (check, call) = match &info.value_ty {
        Some(ty) => (
            quote_spanned!(ty.span()=> #rt::__private::assert_cacheable::<#ty>();),
            respan(&call, ty.span()),
        ),
        None => (quote!(), call),
    };
    let function = emit(
        func,
        quote! {
            #check
            #bind_cache
            let #key = #key_expr;
            #call
        },
    );
    let handle = handle::handle(&rt, args, func, info, errors);
    quote!(#function #handle)
}

/// `version = <expr>` as a function of the written value to its version
/// key: `|name: &Value| version_key(&expr)`, where `name` is the name the
/// expression starts with (`user` in `user.updated_at`); or a closure,
/// given the value. A type that is no version is reported on `expr`.
fn version_fn(
    rt: &TokenStream,
    expr: &Expr,
    value_ty: Option<&syn::Type>,
    errors: &mut Errors,
) -> TokenStream {
    let Some(ty) = value_ty else {
        return quote!(|_| 0);
    };
    let span = expr.span();
    let rt = respan(rt, span);
    let value = internal("__cache_rt_value");
    if let Expr::Closure(closure) = expr {
        return quote_spanned! {span=>
            |#value: &#ty| #rt::__private::version_of::<#ty, _>(#closure, #value)
        };
    }
    match root_name(expr) {
        Some(name) => quote_spanned! {span=>
            |#name: &#ty| #rt::CacheVersion::version_key(&(#expr))
        },
        None => {
            errors.push(
                span,
                "`version` is an expression over the value the function returns, starting with a name that stands for it (`version = user.updated_at`), or a closure (`version = |user| user.updated_at`)",
            );
            quote!(|_| 0)
        }
    }
}

/// The name an expression starts with: `user` in `user.updated_at`,
/// `user.version()`, `user.rows[0]`, `(user.rev as u64)`.
fn root_name(expr: &Expr) -> Option<&Ident> {
    match expr {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident(),
        Expr::Field(e) => root_name(&e.base),
        Expr::MethodCall(e) => root_name(&e.receiver),
        Expr::Index(e) => root_name(&e.expr),
        Expr::Cast(e) => root_name(&e.expr),
        Expr::Paren(e) => root_name(&e.expr),
        Expr::Reference(e) => root_name(&e.expr),
        Expr::Unary(e) => root_name(&e.expr),
        _ => None,
    }
}

/// `#[invalidates]`.
pub(crate) fn invalidates(
    args: &InvalidatesArgs,
    func: &ItemFn,
    info: &FnInfo,
    errors: &mut Errors,
) -> TokenStream {
    let rt = runtime(args.krate.as_ref());
    let cache = internal("__cache_rt_cache");
    let keys = internal("__cache_rt_keys");
    let bind_cache = bind_cache(&rt, &cache, args.cache.as_ref(), info);
    let key_exprs: Vec<TokenStream> = args
        .templates
        .iter()
        .map(|lit| template_key(&rt, &cache, lit, info, errors))
        .collect();
    let n = key_exprs.len();
    let shape = info.shape.marker();
    let block = &func.block;
    emit(
        func,
        quote! {
            #bind_cache
            let #keys = [#(#key_exprs),*];
            #rt::__private::invalidate_after::<#rt::__private::#shape, _, _, #n>(#cache, #keys, async move #block).await
        },
    )
}
