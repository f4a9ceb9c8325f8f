//! `strategy = "write_behind"`: the function becomes the call path (store
//! the value, queue the arguments, return), and its body moves into the
//! handle, `const NAME: WriteBehind<Owner, Args>`, whose flushers run it
//! later with the arguments decoded from the queue.
//!
//! - The call path encodes the arguments as a tuple of references; the
//!   flusher decodes them as a tuple of owned values (`String` for `&str`,
//!   `T` for `&T`, through `ToOwned`), and the body borrows them again, so
//!   it sees the types it was written for.
//! - On a `&self` method, the owner is `Self`: the handle is an associated
//!   constant, and the body's `self` is the instance a flusher was given.
//! - The function returns `Result<(), E>`: `Ok(())` once queued, or the
//!   queue's error converted with `E::from`. The body's own result is the
//!   flusher's: an `Err` is retried, then dead-lettered with its text.

use crate::args::CachedArgs;
use crate::errors::Errors;
use crate::expand::{cache_ref, internal, respan, template_key};
use crate::owned::{rename_self, replace_self};
use crate::signature::{shape_of, FnInfo, Receiver, Shape};
use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, ReturnType, Type};

/// What the owner of the body is called inside the handle.
const OWNER: &str = "__cache_rt_self";

/// The function's new body and the handle item.
pub(crate) fn expand(
    rt: &TokenStream,
    args: &CachedArgs,
    func: &ItemFn,
    info: &FnInfo,
    errors: &mut Errors,
) -> (TokenStream, TokenStream) {
    let sig = &func.sig;
    if !sig.generics.params.is_empty() {
        errors.push(
            sig.generics.span(),
            "a write-behind function cannot be generic: its handle, a constant, runs one body for one queue",
        );
    }
    let method = match info.receiver {
        None => false,
        Some((Receiver::Shared, _)) => true,
        Some((_, span)) => {
            errors.push(
                span,
                "a write-behind body runs later, in a flusher, on the instance the flusher was given: take `&self`",
            );
            false
        }
    };
    let ret = check_return(&sig.output, errors);
    let params = queued_params(info, errors);
    if let Some(cache) = &args.cache {
        if let Some(name) = names_a_param(cache, info) {
            errors.push(
                cache.span(),
                format!("a write-behind flusher reaches the cache without the call's arguments, and `cache` uses `{name}`: name a static, `self.<field>`, or leave it out for the default cache"),
            );
        }
    }
    let (Some(value), Some(template), Some(handle)) = (&args.value, &args.key, &args.handle) else {
        // `args` reported what is missing.
        return (quote!(), quote!());
    };

    let fn_name = sig.ident.to_string();
    let queue_name = match &args.queue {
        Some(lit) => quote!(#lit),
        None if method => {
            errors.push(
                handle.span(),
                "a write-behind method needs `queue = \"name\"`: its default name, the module's path and the method's, would be shared by methods of one name on other types",
            );
            return (quote!(), quote!());
        }
        None => quote!(::core::concat!(::core::module_path!(), "::", #fn_name)),
    };
    let mut spec = quote! {
        #rt::__private::QueueSpec::new(
            #queue_name,
            ::core::concat!(::core::module_path!(), "::", #fn_name),
        )
    };
    if let Some(ms) = args.ttl_ms {
        spec.extend(quote!(.ttl_ms(#ms)));
    }

    // The call path.
    let args_name = internal("__cache_rt_args");
    let value_name = internal("__cache_rt_value");
    let cache = internal("__cache_rt_cache");
    let key = internal("__cache_rt_key");
    let cache_expr = cache_ref(rt, args.cache.as_ref());
    let key_expr = template_key(rt, &cache, template, info, errors);
    let value_rt = respan(rt, value.span());
    let value_bytes =
        quote_spanned!(value.span()=> #value_rt::__private::pending_value(#cache, &(#value)));
    let uses = params.iter().filter(|p| p.mutable).map(|p| {
        let name = &p.name;
        quote!(let _ = &mut #name;)
    });
    let pushes = params.iter().map(|p| &p.push);
    // The check and the conversion both on the return type: a type that
    // fails the bound is reported once, there.
    let (ret_check, not_queued) = match ret {
        Some(ty) => {
            let ty_rt = respan(rt, ty.span());
            (
                quote_spanned!(ty.span()=> #ty_rt::__private::assert_write_behind_result::<#ty>();),
                quote_spanned!(ty.span()=> <#ty as #ty_rt::__private::WriteBehindResult>::not_queued(e)),
            )
        }
        None => (quote!(), quote!(::core::unreachable!("{}", e))),
    };
    let body = quote! {
        #ret_check
        #(#uses)*
        let #cache: &#rt::__private::Cache = #cache_expr;
        let #key = #key_expr;
        let #value_name = #value_bytes;
        let #args_name = #rt::__private::Args::new() #(#pushes)*;
        match #rt::__private::write_behind(#cache, #key, #spec, #value_name, #args_name).await {
            ::core::result::Result::Ok(()) => ::core::result::Result::Ok(()),
            ::core::result::Result::Err(e) => #not_queued,
        }
    };

    // The handle: the body, run by flushers.
    let owner = Ident::new(OWNER, Span::call_site());
    let owner_ty = if method { quote!(Self) } else { quote!(()) };
    let owned: Vec<&TokenStream> = params.iter().map(|p| &p.owned).collect();
    let args_ty = quote!((#(#owned,)*));
    let bindings = params.iter().map(|p| {
        let name = &p.name;
        if p.mutable {
            quote!(mut #name)
        } else {
            quote!(#name)
        }
    });
    let borrows = params.iter().map(|p| &p.borrow);
    let mut handle_cache = cache_ref(rt, args.cache.as_ref());
    let mut block = func.block.to_token_stream();
    if method {
        handle_cache = replace_self(handle_cache, &owner).0;
        block = rename_self(&func.block, &owner).to_token_stream();
    }
    let self_ref = method.then(|| quote!(let #owner: &Self = &*#owner;));
    let ret_ty = ret.map_or_else(|| quote!(()), |ty| quote!(#ty));
    let vis = &func.vis;
    let doc = format!(
        "The write-behind queue of [`{fn_name}`]: start flushers that run its body (`flusher`), and see its queue and dead letters (`queue`). Defined by the `handle` of its `#[cached]`."
    );
    let result = internal("__cache_rt_result");
    let handle_item = quote! {
        #[doc = #doc]
        #vis const #handle: #rt::WriteBehind<#owner_ty, #args_ty> = #rt::WriteBehind::new(
            #spec,
            |#owner| #handle_cache,
            |#owner, #args_name| ::std::boxed::Box::pin(async move {
                #[allow(unused_variables, unused_mut)]
                let (#(#bindings,)*) = #args_name;
                #(#borrows)*
                #self_ref
                let #result: #ret_ty = async move #block.await;
                match #result {
                    ::core::result::Result::Ok(()) => ::core::result::Result::Ok(()),
                    ::core::result::Result::Err(e) => {
                        ::core::result::Result::Err(::std::string::ToString::to_string(&e))
                    }
                }
            }),
        );
    };
    (body, handle_item)
}

/// The return type, when it is `Result<(), E>`; else an error on it.
fn check_return<'a>(output: &'a ReturnType, errors: &mut Errors) -> Option<&'a Type> {
    let message = "a write-behind function returns `Result<(), E>`: `Ok(())` once the write is queued, the queue's error (through `E: From<cache_runtime::Error>`) when it is not; the body's own result goes to the flusher";
    match output {
        ReturnType::Default => {
            errors.push(output.span(), message);
            None
        }
        ReturnType::Type(_, ty) => match shape_of(ty) {
            (Shape::Res, Some(Type::Tuple(unit))) if unit.elems.is_empty() => Some(ty),
            _ => {
                errors.push(ty.span(), message);
                None
            }
        },
    }
}

/// A parameter as the queue carries it.
struct Queued {
    name: Ident,
    mutable: bool,
    /// The type the flusher decodes it as.
    owned: TokenStream,
    /// Borrows the owned value again as the declared type, for references.
    borrow: TokenStream,
    /// Appends it to the call's `Args`; checks, at the parameter's type,
    /// that it can be queued.
    push: TokenStream,
}

fn queued_params(info: &FnInfo, errors: &mut Errors) -> Vec<Queued> {
    let mut out = Vec::new();
    for param in &info.params {
        let Some(name) = &param.name else {
            errors.push(
                param.span,
                "a write-behind function queues its arguments by name: bind this one to a name",
            );
            continue;
        };
        let ty_span = param.ty.span();
        let (owned, borrow, push) = match &param.ty {
            Type::Reference(r) if r.mutability.is_some() => {
                errors.push(
                    ty_span,
                    format!("a write-behind function cannot queue `&mut` argument `{name}`: its body runs later, in a flusher; take it by value or by `&`"),
                );
                continue;
            }
            Type::Reference(r) => {
                let referent = &r.elem;
                if matches!(**referent, Type::ImplTrait(_)) {
                    errors.push(ty_span, format!("a write-behind function names the type of `{name}` to decode it in the flusher: `impl Trait` has none"));
                    continue;
                }
                let binding = if param.mutable {
                    quote!(mut #name)
                } else {
                    quote!(#name)
                };
                (
                    owned_form(referent),
                    quote_spanned!(ty_span=>
                        #[allow(unused_variables, unused_mut)]
                        let #binding: &#referent = ::core::borrow::Borrow::borrow(&#name);
                    ),
                    quote_spanned!(ty_span=> .arg_ref::<#referent>(#name)),
                )
            }
            Type::ImplTrait(_) => {
                errors.push(ty_span, format!("a write-behind function names the type of `{name}` to decode it in the flusher: `impl Trait` has none"));
                continue;
            }
            ty => (
                quote!(#ty),
                quote!(),
                quote_spanned!(ty_span=> .arg::<#ty>(&#name)),
            ),
        };
        out.push(Queued {
            name: name.clone(),
            mutable: param.mutable,
            owned,
            borrow,
            push,
        });
    }
    out
}

/// The owned form a borrowed argument `&T` is decoded as, `T::Owned`:
/// written out where it can be (`String` for `str`, `Vec<T>` for `[T]`, `T`
/// itself for a type with generic arguments or a name other than the
/// unsized std types'), so that the handle's type holds no projection that
/// fails a second time when `T` cannot be queued (the call path reports
/// it, once, on the argument). `Path`, `OsStr` and `CStr` (the std types or
/// another of that name) keep the projection.
fn owned_form(referent: &Type) -> TokenStream {
    match referent {
        Type::Slice(slice) => {
            let elem = &slice.elem;
            quote!(::std::vec::Vec<#elem>)
        }
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last();
            let bare = last.is_some_and(|s| s.arguments.is_none());
            match last.map(|s| s.ident.to_string()).as_deref() {
                Some("str") if bare => quote!(::std::string::String),
                Some("Path" | "OsStr" | "CStr") if bare => {
                    quote!(<#referent as ::std::borrow::ToOwned>::Owned)
                }
                _ => quote!(#referent),
            }
        }
        Type::Paren(inner) => owned_form(&inner.elem),
        _ => quote!(#referent),
    }
}

/// The first parameter name `expr` uses, if any.
fn names_a_param(expr: &Expr, info: &FnInfo) -> Option<String> {
    let mut stack = vec![expr.to_token_stream()];
    while let Some(tokens) = stack.pop() {
        for tree in tokens {
            match tree {
                proc_macro2::TokenTree::Ident(ident)
                    if info.params.iter().any(|p| p.name.as_ref() == Some(&ident)) =>
                {
                    return Some(ident.to_string());
                }
                proc_macro2::TokenTree::Group(group) => stack.push(group.stream()),
                _ => {}
            }
        }
    }
    None
}
