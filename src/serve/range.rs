//! The `Range` header of a blob request, as RFC 9110 §14.1.2 reads it. A pure
//! function of the header and the blob's size, so it can be tested on its own.

/// What a `Range` header asks of a blob of `size` bytes.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Wanted {
    /// No usable range (malformed, another unit, several ranges): the whole blob.
    Whole,
    /// Bytes `start..=end`, the end clamped to the blob.
    Part(u64, u64),
    /// A range that starts past the end: 416.
    Unsatisfiable,
}

/// `bytes=START-[END]` or `bytes=-SUFFIX` within `size`. Never panics; a `Part`
/// always satisfies `start <= end < size`.
pub fn parse_range(header: &str, size: u64) -> Wanted {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Wanted::Whole;
    };
    let Some((s, e)) = spec.split_once('-').filter(|_| !spec.contains(',')) else {
        return Wanted::Whole;
    };
    let (s, e) = (s.trim(), e.trim());
    let last = match size.checked_sub(1) {
        Some(last) => last,
        None => {
            // Nothing of an empty blob can be had, but a malformed header still
            // means "the whole thing".
            let valid = if s.is_empty() {
                e.parse::<u64>().is_ok()
            } else {
                s.parse::<u64>().is_ok()
                    && (e.is_empty()
                        || matches!((s.parse::<u64>(), e.parse::<u64>()), (Ok(a), Ok(b)) if b >= a))
            };
            return if valid {
                Wanted::Unsatisfiable
            } else {
                Wanted::Whole
            };
        }
    };
    if s.is_empty() {
        // A suffix: the last N bytes.
        return match e.parse::<u64>() {
            Ok(0) => Wanted::Unsatisfiable,
            Ok(n) => Wanted::Part(size.saturating_sub(n), last),
            Err(_) => Wanted::Whole,
        };
    }
    let Ok(start) = s.parse::<u64>() else {
        return Wanted::Whole;
    };
    let end = if e.is_empty() {
        None
    } else {
        match e.parse::<u64>() {
            Ok(end) if end >= start => Some(end),
            _ => return Wanted::Whole,
        }
    };
    if start > last {
        return Wanted::Unsatisfiable;
    }
    Wanted::Part(start, end.map_or(last, |end| end.min(last)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_within_the_blob() {
        assert_eq!(parse_range("bytes=0-9", 100), Wanted::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Wanted::Part(90, 99));
        assert_eq!(parse_range("bytes=90-200", 100), Wanted::Part(90, 99));
        assert_eq!(parse_range("bytes=-5", 100), Wanted::Part(95, 99));
        assert_eq!(parse_range("bytes=-500", 100), Wanted::Part(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), Wanted::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Wanted::Unsatisfiable);
        assert_eq!(parse_range("items=1-2", 100), Wanted::Whole);
        assert_eq!(parse_range("bytes=abc", 100), Wanted::Whole);
        assert_eq!(parse_range("bytes=0-0,5-6", 100), Wanted::Whole);
        assert_eq!(parse_range("bytes=9-3", 100), Wanted::Whole);
        assert_eq!(parse_range("bytes=0-", 0), Wanted::Unsatisfiable);
        assert_eq!(parse_range("bytes=-3", 0), Wanted::Unsatisfiable);
        assert_eq!(parse_range("bytes=x-", 0), Wanted::Whole);
        assert_eq!(
            parse_range(&format!("bytes={}-", u64::MAX), u64::MAX),
            Wanted::Unsatisfiable
        );
        assert_eq!(
            parse_range("bytes=18446744073709551616-", 100),
            Wanted::Whole
        );
    }
}
