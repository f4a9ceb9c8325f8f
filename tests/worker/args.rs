//! Command-line arguments of the worker processes.

/// Argument `i` parsed as `T`; panics naming `name` when it is missing or
/// does not parse.
pub fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("argument {i} ({name}) is missing or invalid"))
}
