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

/// The strategies, by name.
pub(crate) const STRATEGIES: [&str; 5] = [
    "aside",
    "read_through",
    "write_through",
    "write_behind",
    "refresh_ahead",
];

/// The strategies this build implements.
#[derive(Clone, Copy, PartialEq, Debug, Default)]
pub(crate) enum Strategy {
    #[default]
    Aside,
    ReadThrough,
    WriteThrough,
    WriteBehind,
    RefreshAhead,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::Aside => "aside",
            Strategy::ReadThrough => "read_through",
            Strategy::WriteThrough => "write_through",
            Strategy::WriteBehind => "write_behind",
            Strategy::RefreshAhead => "refresh_ahead",
        }
    }

    /// Whether the function reads (loads on a miss), as opposed to writes.
    fn reads(self) -> bool {
        !matches!(self, Strategy::WriteThrough | Strategy::WriteBehind)
    }

    /// Whether the attribute defines a handle (`handle = NAME`, required).
    fn has_handle(self) -> bool {
        matches!(self, Strategy::ReadThrough | Strategy::WriteBehind)
    }
}

/// `refresh = ...`: when a value is refreshed ahead of its expiry.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum RefreshArg {
    /// A fraction of the TTL (`0.8`).
    Fraction(f64),
    /// An age, in milliseconds (`"4m"`, `240`).
    AfterMs(u64),
    /// Probabilistic early expiration (`"xfetch"`).
    XFetch,
}

/// Arguments of `#[cached]`.
#[derive(Default)]
pub(crate) struct CachedArgs {
    pub(crate) strategy: Strategy,
    pub(crate) key: Option<LitStr>,
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) null_ttl_ms: Option<u64>,
    /// `lock = false` turns miss coordination off.
    pub(crate) lock: Option<bool>,
    pub(crate) lease_ttl_ms: Option<u64>,
    pub(crate) lease_wait_ms: Option<u64>,
    pub(crate) refresh: Option<RefreshArg>,
    pub(crate) beta: Option<f64>,
    pub(crate) stale_ms: Option<u64>,
    /// `handle = NAME`: the read-through handle to define.
    pub(crate) handle: Option<Ident>,
    /// `version = <expr>`: the version of a value written through.
    pub(crate) version: Option<Expr>,
    /// `value = <expr>`: the value a write-behind call stores.
    pub(crate) value: Option<Expr>,
    /// `queue = "name"`: the name of a write-behind queue.
    pub(crate) queue: Option<LitStr>,
    pub(crate) cache: Option<Expr>,
    pub(crate) krate: Option<Path>,
    /// Where each argument was given, for errors that involve two of them.
    spans: Vec<(&'static str, Span)>,
}

/// Arguments of `#[invalidates]`.
#[derive(Default)]
pub(crate) struct InvalidatesArgs {
    pub(crate) templates: Vec<LitStr>,
    pub(crate) cache: Option<Expr>,
    pub(crate) krate: Option<Path>,
}

const CACHED_NAMES: [&str; 16] = [
    "strategy",
    "key",
    "ttl",
    "null_ttl",
    "lock",
    "lease_ttl",
    "lease_wait",
    "refresh",
    "beta",
    "stale",
    "handle",
    "version",
    "value",
    "queue",
    "cache",
    "crate",
];
/// The arguments of functions that read: how misses load and what they
/// store.
const READ_ONLY: [&str; 5] = ["null_ttl", "lock", "lease_ttl", "lease_wait", "stale"];

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

/// `refresh = 0.8`, `refresh = "4m"`, `refresh = 240`, `refresh = "xfetch"`.
fn refresh(errors: &mut Errors, value: &Expr) -> Option<RefreshArg> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => match f.base10_parse::<f64>() {
            Ok(fraction) if fraction > 0.0 && fraction < 1.0 => {
                Some(RefreshArg::Fraction(fraction))
            }
            _ => {
                errors.push(
                    f.span(),
                    "`refresh` as a fraction of the TTL lies strictly between 0 and 1 (`refresh = 0.8`: at 80% of the TTL)",
                );
                None
            }
        },
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) if s.value() == "xfetch" => Some(RefreshArg::XFetch),
        Expr::Lit(ExprLit {
            lit: Lit::Str(_) | Lit::Int(_),
            ..
        }) => positive_ms(errors, "refresh", value, "").map(RefreshArg::AfterMs),
        other => {
            errors.push(
                other.span(),
                "`refresh` takes a fraction of the TTL (`refresh = 0.8`), an age (`refresh = \"4m\"`) or `\"xfetch\"`",
            );
            None
        }
    }
}

/// A positive number: `beta = 1.5` or `beta = 2`.
fn positive_number(errors: &mut Errors, name: &str, value: &Expr) -> Option<f64> {
    let number = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse::<f64>().ok(),
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<f64>().ok(),
        _ => None,
    };
    match number {
        Some(n) if n > 0.0 && n.is_finite() => Some(n),
        _ => {
            errors.push(
                value.span(),
                format!("`{name}` takes a number greater than zero, like `{name} = 1.0`"),
            );
            None
        }
    }
}

fn ident(errors: &mut Errors, name: &str, value: &Expr) -> Option<Ident> {
    match value {
        Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
            p.path.get_ident().cloned()
        }
        other => {
            errors.push(
                other.span(),
                format!("`{name}` takes a name, like `{name} = USERS`"),
            );
            None
        }
    }
}

/// `queue = "inventory"`: a name that keeps the queue's keys in one
/// cluster slot.
fn queue_name(errors: &mut Errors, value: &Expr) -> Option<LitStr> {
    let lit = string(errors, "queue", value)?;
    let name = lit.value();
    if name.is_empty() || name.contains(['{', '}']) || name.chars().any(char::is_whitespace) {
        errors.push(
            lit.span(),
            "`queue` takes a name without braces or whitespace, like `queue = \"inventory\"`",
        );
        return None;
    }
    Some(lit)
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
            if let Some(known) = CACHED_NAMES.iter().find(|n| **n == name_str) {
                args.spans.push((known, value.span()));
            }
            match name_str.as_str() {
                "strategy" => {
                    if let Some(lit) = string(errors, "strategy", &value) {
                        args.strategy = strategy(errors, &lit).unwrap_or_default();
                    }
                }
                "refresh" => args.refresh = refresh(errors, &value),
                "beta" => args.beta = positive_number(errors, "beta", &value),
                "stale" => {
                    args.stale_ms = positive_ms(
                        errors,
                        "stale",
                        &value,
                        ": it is the time a value is served past its TTL",
                    )
                }
                "handle" => args.handle = ident(errors, "handle", &value),
                "version" => args.version = Some(value),
                "value" => args.value = Some(value),
                "queue" => args.queue = queue_name(errors, &value),
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
        args.check(errors);
        args
    }

    /// Where `name` was given.
    fn span_of(&self, name: &str) -> Option<Span> {
        self.spans.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }

    /// Whether the function may load in the background (refresh ahead, or
    /// refresh a stale value), which needs owned copies of its arguments.
    pub(crate) fn loads_in_background(&self) -> bool {
        self.strategy == Strategy::RefreshAhead || self.stale_ms.is_some()
    }

    /// Arguments that make no sense together.
    fn check(&self, errors: &mut Errors) {
        let refresh_ahead = self.strategy == Strategy::RefreshAhead;
        if let (Some(span), false) = (self.span_of("refresh"), refresh_ahead) {
            errors.push(span, "`refresh` applies to `strategy = \"refresh_ahead\"`");
        }
        if let (Some(RefreshArg::AfterMs(after)), Some(ttl), Some(span)) =
            (self.refresh, self.ttl_ms, self.span_of("refresh"))
        {
            if after >= ttl {
                errors.push(span, "`refresh` comes at or after the TTL, when the value has expired: refresh earlier, or give a fraction (`refresh = 0.8`)");
            }
        }
        if let Some(span) = self.span_of("beta") {
            if self.refresh != Some(RefreshArg::XFetch) {
                errors.push(
                    span,
                    "`beta` weighs XFetch's early refreshes: it needs `refresh = \"xfetch\"`",
                );
            }
        }
        for name in READ_ONLY {
            if let (Some(span), false) = (self.span_of(name), self.strategy.reads()) {
                errors.push(
                    span,
                    format!(
                        "`{name}` applies to functions that read (aside, read_through, refresh_ahead), not to `strategy = \"{}\"`: a write stores its result as it is",
                        self.strategy.name()
                    ),
                );
            }
        }
        if let (Some(span), false) = (
            self.span_of("version"),
            self.strategy == Strategy::WriteThrough,
        ) {
            errors.push(
                span,
                "`version` orders the values written through a key: it needs `strategy = \"write_through\"`",
            );
        }
        if let (Some(span), Some(false), true) =
            (self.span_of("lock"), self.lock, self.loads_in_background())
        {
            errors.push(span, "`lock = false` cannot go with `stale` or `refresh_ahead`: background refreshes take the key's lease, so that one runs per key");
        }
        if let (Some(handle), false) = (&self.handle, self.strategy.has_handle()) {
            errors.push(
                handle.span(),
                "`handle` names the read path of `strategy = \"read_through\"` or the flushers of `strategy = \"write_behind\"`",
            );
        }
        if let (None, Some(span)) = (self.span_of("handle"), self.span_of("strategy")) {
            match self.strategy {
                Strategy::ReadThrough => errors.push(span, "`read_through` needs a handle for other code to read through: add `handle = NAME`, which this attribute defines beside the function (a constant; a method for `&self` methods)"),
                Strategy::WriteBehind => errors.push(span, "`write_behind` needs a handle to start the flushers that run its body: add `handle = NAME`, which this attribute defines beside the function (a constant)"),
                _ => {}
            }
        }
        let write_behind = self.strategy == Strategy::WriteBehind;
        for name in ["value", "queue"] {
            if let (Some(span), false) = (self.span_of(name), write_behind) {
                errors.push(
                    span,
                    format!("`{name}` applies to `strategy = \"write_behind\"`"),
                );
            }
        }
        if let (true, Some(span)) = (write_behind, self.span_of("strategy")) {
            if self.key.is_none() {
                errors.push(span, "`write_behind` needs an explicit `key = \"...\"`: the key its value is stored under, from the arguments that name the row (not the value)");
            }
            if self.value.is_none() {
                errors.push(span, "`write_behind` needs `value = <expr>`: what the call stores under the key at once, from its arguments (`value = qty`)");
            }
        }
    }
}

fn strategy(errors: &mut Errors, lit: &LitStr) -> Option<Strategy> {
    let name = lit.value();
    match name.as_str() {
        "aside" => return Some(Strategy::Aside),
        "read_through" => return Some(Strategy::ReadThrough),
        "write_through" => return Some(Strategy::WriteThrough),
        "write_behind" => return Some(Strategy::WriteBehind),
        "refresh_ahead" => return Some(Strategy::RefreshAhead),
        s => errors.push(
            lit.span(),
            format!(
                "unknown strategy `{s}`{}; expected one of: {}",
                did_you_mean(s, STRATEGIES),
                STRATEGIES.join(", ")
            ),
        ),
    }
    None
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
