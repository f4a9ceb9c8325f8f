//! Attribute arguments: parsed into typed structs, each value kept with its
//! span. Unknown, duplicated and ill-typed arguments are collected as
//! errors on the exact token, all reported together.

use crate::duration;
use crate::errors::Errors;
use crate::suggest::did_you_mean;
use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Path, Token};

/// One item of an argument list: `"template"` or `name = value`.
pub(crate) enum Item {
    Template(LitStr),
    Named(Ident, Expr),
}

impl Parse for Item {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(LitStr) {
            return Ok(Item::Template(input.parse()?));
        }
        let name = input.call(Ident::parse_any).map_err(|e| {
            syn::Error::new(e.span(), "expected `name = value` or a key template string")
        })?;
        input.parse::<Token![=]>()?;
        Ok(Item::Named(name, input.parse()?))
    }
}

/// Parses a comma-separated argument list.
pub(crate) fn items(tokens: proc_macro2::TokenStream) -> syn::Result<Vec<Item>> {
    let parser = Punctuated::<Item, Token![,]>::parse_terminated;
    Ok(syn::parse::Parser::parse2(parser, tokens)?
        .into_iter()
        .collect())
}

/// The strategies; only `aside` exists so far.
pub(crate) const STRATEGIES: [&str; 5] = [
    "aside",
    "read_through",
    "write_through",
    "write_behind",
    "refresh_ahead",
];

/// Arguments of `#[cached]`.
#[derive(Default)]
pub(crate) struct CachedArgs {
    pub(crate) key: Option<LitStr>,
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) null_ttl_ms: Option<u64>,
    /// `lock = false` turns miss coordination off.
    pub(crate) lock: Option<bool>,
    pub(crate) lease_ttl_ms: Option<u64>,
    pub(crate) lease_wait_ms: Option<u64>,
    pub(crate) cache: Option<Expr>,
    pub(crate) krate: Option<Path>,
}

/// Arguments of `#[invalidates]`.
#[derive(Default)]
pub(crate) struct InvalidatesArgs {
    pub(crate) templates: Vec<LitStr>,
    pub(crate) cache: Option<Expr>,
    pub(crate) krate: Option<Path>,
}

const CACHED_NAMES: [&str; 9] = [
    "strategy",
    "key",
    "ttl",
    "null_ttl",
    "lock",
    "lease_ttl",
    "lease_wait",
    "cache",
    "crate",
];
const INVALIDATES_NAMES: [&str; 2] = ["cache", "crate"];

fn unknown(errors: &mut Errors, name: &Ident, known: &[&str]) {
    let name_str = name.unraw().to_string();
    errors.push(
        name.span(),
        format!(
            "unknown argument `{name_str}`{}; expected one of: {}",
            did_you_mean(&name_str, known.iter().copied()),
            known.join(", ")
        ),
    );
}

/// Tracks names already given, for duplicate errors.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    /// `true` the first time; an error on later ones.
    fn first(&mut self, errors: &mut Errors, name: &Ident) -> bool {
        let s = name.unraw().to_string();
        if self.0.contains(&s) {
            errors.push(name.span(), format!("duplicate argument `{s}`"));
            return false;
        }
        self.0.push(s);
        true
    }
}

fn string(errors: &mut Errors, name: &str, value: &Expr) -> Option<LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.clone()),
        other => {
            errors.push(other.span(), format!("`{name}` takes a string literal"));
            None
        }
    }
}

/// A duration argument in milliseconds: an integer of seconds, or a string
/// with units.
fn duration_ms(errors: &mut Errors, name: &str, value: &Expr) -> Option<u64> {
    let parsed = match value {
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => i
            .base10_parse::<u64>()
            .ok()
            .and_then(|s| s.checked_mul(1_000))
            .ok_or_else(|| format!("`{name}` is too large")),
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => duration::parse_ms(&s.value()),
        _ => Err(format!(
            "`{name}` takes an integer of seconds (`{name} = 300`) or a duration string ({}), like `{name} = \"5m\"`",
            duration::UNITS
        )),
    };
    parsed
        .map_err(|message| errors.push(value.span(), message))
        .ok()
}

/// A duration argument that must be greater than zero.
fn positive_ms(errors: &mut Errors, name: &str, value: &Expr, why: &str) -> Option<u64> {
    let ms = duration_ms(errors, name, value)?;
    if ms == 0 {
        errors.push(
            value.span(),
            format!("`{name}` must be greater than zero{why}"),
        );
        return None;
    }
    Some(ms)
}

fn boolean(errors: &mut Errors, name: &str, value: &Expr) -> Option<bool> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Some(b.value),
        other => {
            errors.push(other.span(), format!("`{name}` takes `true` or `false`"));
            None
        }
    }
}

fn krate(errors: &mut Errors, value: &Expr) -> Option<Path> {
    let lit = string(errors, "crate", value)?;
    lit.parse::<Path>()
        .map_err(|_| {
            errors.push(
                lit.span(),
                "`crate` takes a path, like `crate = \"my_cache\"`",
            )
        })
        .ok()
}

impl CachedArgs {
    pub(crate) fn from_items(items: Vec<Item>, errors: &mut Errors) -> Self {
        let mut args = CachedArgs::default();
        let mut seen = Seen::default();
        // Lease settings, to refuse them next to `lock = false`.
        let mut lease_settings = Vec::new();
        for item in items {
            let (name, value) = match item {
                Item::Named(name, value) => (name, value),
                Item::Template(lit) => {
                    errors.push(lit.span(), "a key template is written `key = \"...\"`");
                    continue;
                }
            };
            let name_str = name.unraw().to_string();
            if !CACHED_NAMES.contains(&name_str.as_str()) {
                unknown(errors, &name, &CACHED_NAMES);
                continue;
            }
            if !seen.first(errors, &name) {
                continue;
            }
            match name_str.as_str() {
                "strategy" => {
                    if let Some(lit) = string(errors, "strategy", &value) {
                        check_strategy(errors, &lit);
                    }
                }
                "key" => args.key = string(errors, "key", &value),
                "ttl" => {
                    args.ttl_ms = positive_ms(
                        errors,
                        "ttl",
                        &value,
                        ": every entry expires (to not cache `None`, set `null_ttl = 0`)",
                    );
                }
                "null_ttl" => args.null_ttl_ms = duration_ms(errors, "null_ttl", &value),
                "lock" => args.lock = boolean(errors, "lock", &value),
                "lease_ttl" => {
                    lease_settings.push(name);
                    args.lease_ttl_ms = positive_ms(errors, "lease_ttl", &value, "");
                }
                "lease_wait" => {
                    lease_settings.push(name);
                    args.lease_wait_ms = positive_ms(
                        errors,
                        "lease_wait",
                        &value,
                        "; to not wait for other callers' loads at all, set `lock = false`",
                    );
                }
                "cache" => args.cache = Some(value),
                _ => args.krate = krate(errors, &value),
            }
        }
        if args.lock == Some(false) {
            for name in lease_settings {
                errors.push(
                    name.span(),
                    format!("`{name}` has no effect with `lock = false`: without a lock there is no lease; remove one of them"),
                );
            }
        }
        args
    }
}

fn check_strategy(errors: &mut Errors, lit: &LitStr) {
    let name = lit.value();
    match name.as_str() {
        "aside" => {}
        s if STRATEGIES.contains(&s) => errors.push(
            lit.span(),
            format!("strategy `{s}` is not supported yet; supported: aside"),
        ),
        s => errors.push(
            lit.span(),
            format!(
                "unknown strategy `{s}`{}; expected one of: {}",
                did_you_mean(s, STRATEGIES),
                STRATEGIES.join(", ")
            ),
        ),
    }
}

impl InvalidatesArgs {
    pub(crate) fn from_items(items: Vec<Item>, errors: &mut Errors, span: Span) -> Self {
        let mut args = InvalidatesArgs::default();
        let mut seen = Seen::default();
        for item in items {
            match item {
                Item::Template(lit) => args.templates.push(lit),
                Item::Named(name, value) => {
                    let name_str = name.unraw().to_string();
                    if !INVALIDATES_NAMES.contains(&name_str.as_str()) {
                        unknown(errors, &name, &INVALIDATES_NAMES);
                    } else if seen.first(errors, &name) {
                        match name_str.as_str() {
                            "cache" => args.cache = Some(value),
                            _ => args.krate = krate(errors, &value),
                        }
                    }
                }
            }
        }
        if args.templates.is_empty() {
            errors.push(
                span,
                "#[invalidates] needs at least one key template, like #[invalidates(\"user:<id>\")]",
            );
        }
        args
    }
}
