//! `--platform os/arch[/variant],...`: which children of an index to keep.

use crate::manifest::{Descriptor, Platform};

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

    /// The children of an index that the filter keeps, in the index's order.
    pub fn matching<'a>(&self, manifests: &'a [Descriptor]) -> Vec<&'a Descriptor> {
        manifests
            .iter()
            .filter(|d| self.matches(d.platform.as_ref()))
            .collect()
    }

    /// The child that a one-platform filter picks from an index (what `docker pull
    /// --platform` gives): the first that matches, else why none does.
    pub fn pick<'a>(&self, manifests: &'a [Descriptor]) -> Result<&'a Descriptor, String> {
        self.matching(manifests)
            .first()
            .copied()
            .ok_or_else(|| self.none_in(manifests))
    }

    /// Why no child of an index matches: the platforms asked for and those it has.
    pub fn none_in(&self, manifests: &[Descriptor]) -> String {
        let has: Vec<String> = manifests
            .iter()
            .map(|d| {
                d.platform
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| crate::i18n::t("unknown", "未知").into())
            })
            .collect();
        crate::tr!(
            "no manifest for platform {} (the index has {})",
            "没有平台 {} 的清单 (索引中有 {})",
            self.to_strings().join(","),
            has.join(", ")
        )
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

    #[test]
    fn one_platform_picks_the_first_match_variant_or_not_else_names_what_there_is() {
        let child = |n: &[u8], platform: Platform| Descriptor {
            media_type: crate::manifest::OCI_MANIFEST.into(),
            digest: crate::digest::Digest::of(n),
            size: 1,
            platform: Some(platform),
            urls: Vec::new(),
        };
        let index = vec![
            child(b"amd64", p("linux", "amd64", None)),
            child(b"arm64", p("linux", "arm64", Some("v8"))),
        ];
        let arm = PlatformFilter::parse("linux/arm64").unwrap();
        assert_eq!(arm.pick(&index).unwrap().digest, index[1].digest);
        let v8 = PlatformFilter::parse("linux/arm64/v8").unwrap();
        assert_eq!(v8.pick(&index).unwrap().digest, index[1].digest);
        let why = PlatformFilter::parse("linux/s390x")
            .unwrap()
            .pick(&index)
            .unwrap_err();
        assert!(why.contains("linux/s390x"), "{why}");
        assert!(why.contains("linux/amd64, linux/arm64/v8"), "{why}");
    }
}
