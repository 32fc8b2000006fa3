//! Checks of the `timezone` and `locale` fields: an IANA time zone name
//! from the tz database, and a BCP 47 language tag whose language is a
//! known ISO 639-1 code.

/// Every zone and link name of the IANA tz database (from `tzdata.zi`),
/// one per line, sorted.
const TIMEZONES: &str = include_str!("timezones.txt");

/// ISO 639-1 two-letter language codes.
const LANGUAGES: &str = "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy \
da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz \
ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt \
lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu \
rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr \
ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu";

/// Whether `name` is a time zone of the tz database, spelled exactly.
pub(crate) fn is_timezone(name: &str) -> bool {
    TIMEZONES.lines().any(|z| z == name)
}

/// Why `name` is not a usable time zone, with a suggestion when one
/// differs only in case.
pub(crate) fn check_timezone(name: &str) -> Result<(), String> {
    if is_timezone(name) {
        return Ok(());
    }
    let hint = TIMEZONES
        .lines()
        .find(|z| z.eq_ignore_ascii_case(name))
        .map(|z| format!(" (did you mean {z:?}?)"))
        .unwrap_or_default();
    Err(format!(
        "{name:?} is not an IANA time zone name like \"UTC\", \"Europe/Berlin\" or \"Asia/Tokyo\"{hint}"
    ))
}

/// Why `tag` is not a usable BCP 47 locale: its language must be a known
/// two-letter code (ISO 639-1) or three letters (ISO 639-2/3, e.g. `fil`),
/// other subtags 1 to 8 letters or digits, and the tag written in the
/// case the page will see (`en-US`, `zh-Hant-TW`).
pub(crate) fn check_locale(tag: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "{tag:?} is not a locale like \"en-US\", \"de-DE\" or \"zh-Hant-TW\": {why}"
        ))
    };
    let mut parts = tag.split('-');
    let language = parts.next().unwrap_or_default();
    let known = LANGUAGES
        .split_whitespace()
        .any(|l| l.eq_ignore_ascii_case(language))
        || (language.len() == 3 && language.bytes().all(|b| b.is_ascii_alphabetic()));
    if !known {
        return bad(&format!("{language:?} is not an ISO 639 language code"));
    }
    for part in parts {
        let ok =
            !part.is_empty() && part.len() <= 8 && part.bytes().all(|b| b.is_ascii_alphanumeric());
        if !ok {
            return bad(&format!("{part:?} is not a subtag"));
        }
    }
    let canonical = canonical_case(tag);
    if canonical != tag {
        return bad(&format!("write it {canonical:?}"));
    }
    Ok(())
}

/// `tag` in BCP 47's usual case: language lower, script title, region upper.
fn canonical_case(tag: &str) -> String {
    tag.split('-')
        .enumerate()
        .map(|(i, part)| match part.len() {
            _ if i == 0 => part.to_ascii_lowercase(),
            2 => part.to_ascii_uppercase(),
            4 if part.bytes().all(|b| b.is_ascii_alphabetic()) => {
                let lower = part.to_ascii_lowercase();
                lower[..1].to_ascii_uppercase() + &lower[1..]
            }
            _ => part.to_ascii_lowercase(),
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The languages of the `Accept-Language` header for `locale`, most
/// wanted first: the tag, then its bare language (`de-DE,de`). The browser
/// adds the weights (`de-DE,de;q=0.9`).
pub(crate) fn accept_language(locale: &str) -> String {
    match locale.split_once('-') {
        Some((language, _)) => format!("{locale},{language}"),
        None => locale.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_are_the_tz_database_names() {
        for z in [
            "UTC",
            "Asia/Tokyo",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
        ] {
            assert!(check_timezone(z).is_ok(), "{z}");
        }
        let err = check_timezone("europe/berlin").unwrap_err();
        assert!(err.contains("did you mean \"Europe/Berlin\""), "{err}");
        assert!(check_timezone("Mars/Olympus").is_err());
        assert!(check_timezone("").is_err());
        let mut sorted: Vec<&str> = TIMEZONES.lines().collect();
        sorted.sort_unstable();
        assert_eq!(sorted, TIMEZONES.lines().collect::<Vec<_>>());
    }

    #[test]
    fn locales_are_checked_by_subtag() {
        for l in [
            "en-US",
            "de-DE",
            "de",
            "zh-Hant-TW",
            "pt-BR",
            "es-419",
            "fil-PH",
        ] {
            assert!(check_locale(l).is_ok(), "{l}");
        }
        for l in [
            "",
            "xx-YY",
            "EN-us",
            "zh-hant-tw",
            "english",
            "en_US",
            "en--US",
            "en-toolongsubtag",
        ] {
            assert!(check_locale(l).is_err(), "{l}");
        }
        assert_eq!(accept_language("de-DE"), "de-DE,de");
        assert_eq!(accept_language("fr"), "fr");
    }
}
