//! Durations written in attributes: `300` (seconds) or `"5m"`, `"1h30m"`,
//! `"250ms"`. Pure string logic, unit-tested here.

/// The units a duration string may use.
pub(crate) const UNITS: &str = "ms, s, m, h, d";

/// Parses `"1h30m"`-style text into milliseconds.
pub(crate) fn parse_ms(text: &str) -> Result<u64, String> {
    let malformed = || {
        format!("malformed duration `{text}`: write an integer of seconds (`300`) or numbers with units ({UNITS}), like \"5m\" or \"1h30m\"")
    };
    if text.is_empty() {
        return Err(malformed());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(malformed());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| malformed())?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let factor: u64 = match &rest[..letters] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(format!(
                    "duration `{text}` needs a unit after {number} ({UNITS})"
                ))
            }
            unit => {
                return Err(format!(
                    "unknown unit `{unit}` in duration `{text}`; use one of {UNITS}"
                ))
            }
        };
        rest = &rest[letters..];
        total = number
            .checked_mul(factor)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("duration `{text}` is too long"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_units_and_compounds() {
        assert_eq!(parse_ms("250ms"), Ok(250));
        assert_eq!(parse_ms("5s"), Ok(5_000));
        assert_eq!(parse_ms("5m"), Ok(300_000));
        assert_eq!(parse_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_ms("2d"), Ok(172_800_000));
        assert_eq!(parse_ms("0s"), Ok(0));
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in ["", "m", "5", "5 m", "5min", "-5s", "1.5h", "5m3", " 5m"] {
            assert!(parse_ms(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_ms("5min").unwrap_err().contains("unknown unit `min`"));
        assert!(parse_ms("5").unwrap_err().contains("needs a unit"));
        assert!(parse_ms("99999999999999999999d").is_err());
        assert!(parse_ms("999999999999999d")
            .unwrap_err()
            .contains("too long"));
    }
}
