//! `--platform os/arch[/variant],...`: which children of an index to keep.

use crate::manifest::Platform;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlatformFilter {
    wanted: Vec<(String, String, Option<String>)>,
}

impl PlatformFilter {
    pub fn parse(spec: &str) -> Result<PlatformFilter, String> {
        let mut wanted = Vec::new();
        for p in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let parts: Vec<&str> = p.split('/').collect();
            match parts.as_slice() {
                [os, arch] if !os.is_empty() && !arch.is_empty() => {
                    wanted.push((os.to_string(), arch.to_string(), None))
                }
                [os, arch, variant]
                    if !os.is_empty() && !arch.is_empty() && !variant.is_empty() =>
                {
                    wanted.push((os.to_string(), arch.to_string(), Some(variant.to_string())))
                }
                _ => {
                    return Err(crate::tr!(
                    "platform {p:?} is not os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8",
                    "平台 {p:?} 不是 os/arch[/variant] 形式, 例如 linux/amd64 或 linux/arm64/v8"
                ))
                }
            }
        }
        Ok(PlatformFilter { wanted })
    }

    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty()
    }

    pub fn len(&self) -> usize {
        self.wanted.len()
    }

    pub fn matches(&self, p: Option<&Platform>) -> bool {
        let Some(p) = p else { return false };
        self.wanted.iter().any(|(os, arch, variant)| {
            *os == p.os
                && *arch == p.architecture
                && (variant.is_none() || variant.as_deref() == p.variant.as_deref())
        })
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.wanted
            .iter()
            .map(|(o, a, v)| {
                v.as_ref()
                    .map(|v| format!("{o}/{a}/{v}"))
                    .unwrap_or_else(|| format!("{o}/{a}"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(String::from),
        }
    }

    #[test]
    fn matches_os_arch_and_optional_variant() {
        let f = PlatformFilter::parse("linux/arm64,linux/arm/v7").unwrap();
        assert!(f.matches(Some(&p("linux", "arm64", Some("v8")))));
        assert!(f.matches(Some(&p("linux", "arm", Some("v7")))));
        assert!(!f.matches(Some(&p("linux", "arm", Some("v6")))));
        assert!(!f.matches(Some(&p("linux", "amd64", None))));
        assert!(!f.matches(None));
        assert_eq!(f.to_strings(), vec!["linux/arm64", "linux/arm/v7"]);
        assert!(PlatformFilter::parse("linux").is_err());
        assert!(PlatformFilter::parse("").unwrap().is_empty());
    }
}
