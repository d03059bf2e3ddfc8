//! Metadata lines at the top of a script: `//! name:`, `//! about:`, `//! param:`.

/// What a script says about itself, for `vprobe scripts`, `--help` of a
/// script and the REPL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// `//! name: drops_by_reason`
    pub name: Option<String>,
    /// `//! version: 1.2.0`
    pub version: Option<String>,
    /// `//! about: Count every skb drop ...` (several lines are joined with a space).
    pub about: Option<String>,
    /// `//! param: key=default  description`, as (key, default); a parameter
    /// written without `=` has no default.
    pub params: Vec<(String, Option<String>)>,
}

/// Reads the `//!` lines of a script; other lines and unknown keys are ignored.
///
/// ```
/// let m = vprobe_engine::script::parse_meta("//! name: d\n//! param: every=5s  how often\n");
/// assert_eq!(m.name.as_deref(), Some("d"));
/// assert_eq!(m.params, vec![("every".to_string(), Some("5s".to_string()))]);
/// ```
pub fn parse_meta(text: &str) -> Meta {
    let mut meta = Meta::default();
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix("//!") else {
            continue;
        };
        let Some((key, value)) = rest.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "name" if meta.name.is_none() && !value.is_empty() => {
                meta.name = Some(value.to_string())
            }
            "version" if meta.version.is_none() && !value.is_empty() => {
                meta.version = Some(value.to_string())
            }
            "about" if !value.is_empty() => {
                meta.about = Some(match meta.about.take() {
                    Some(prev) => format!("{prev} {value}"),
                    None => value.to_string(),
                })
            }
            "param" => {
                if let Some(p) = parse_param(value) {
                    meta.params.push(p);
                }
            }
            _ => {}
        }
    }
    meta
}

/// `key=default  description`, `key="a default"  description` or `key  description`.
fn parse_param(s: &str) -> Option<(String, Option<String>)> {
    let end = s
        .find(|c: char| c == '=' || c.is_whitespace())
        .unwrap_or(s.len());
    let key = &s[..end];
    if key.is_empty() {
        return None;
    }
    let rest = &s[end..];
    let default = rest.strip_prefix('=').map(|v| match v.strip_prefix('"') {
        Some(q) => q.split('"').next().unwrap_or_default().to_string(),
        None => v.split_whitespace().next().unwrap_or_default().to_string(),
    });
    Some((key.to_string(), default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_about_and_params() {
        let m = parse_meta(
            "//! name: macvtap_drops\n//! about: Count macvtap RX drops\n//! about: by queue\n\
             //! param: dev=macvtap*  the devices\n//! param: every=\"5 s\"  period\n\
             //!param: verbose  say more\nlet x = 1; //! name: not this\n// param: nope=1\n",
        );
        assert_eq!(m.name.as_deref(), Some("macvtap_drops"));
        assert_eq!(m.about.as_deref(), Some("Count macvtap RX drops by queue"));
        assert_eq!(
            m.params,
            vec![
                ("dev".into(), Some("macvtap*".into())),
                ("every".into(), Some("5 s".into())),
                ("verbose".into(), None),
            ]
        );
    }

    #[test]
    fn empty_script_has_no_meta() {
        assert_eq!(parse_meta("probe(\"skb.drop\");"), Meta::default());
        assert_eq!(parse_meta("//! param:\n//! param: =3\n").params, vec![]);
    }
}
