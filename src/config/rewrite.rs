//! How list lines and repositories are rewritten, as image-transmit does it.

/// One line of an image list: what to fetch, and the name it should get at the
/// target when the line renames it (`SOURCE -> TARGET`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub source: String,
    pub rename: Option<String>,
}

pub fn parse_line(line: &str) -> ListEntry {
    match line.split_once("->") {
        Some((s, t)) => ListEntry {
            source: s.trim().to_string(),
            // An empty target is kept, so that it is reported, not ignored.
            rename: Some(t.trim().to_string()),
        },
        None => ListEntry {
            source: line.trim().to_string(),
            rename: None,
        },
    }
}

/// Points a list line at the chosen source registry. `repository:tag` lines are
/// relative to it; a full reference that names another host is fetched from the
/// chosen source (its host is dropped), and the returned note says so.
pub fn at_source(line: &str, source_host: &str) -> (String, Option<String>) {
    let s = line
        .trim()
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    match s.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            let note = (first != source_host).then(|| {
                crate::tr!(
                    "{line}: names {first}; fetched from the chosen source {source_host}",
                    "{line}: 指向 {first}; 将从所选的源 {source_host} 拉取"
                )
            });
            (format!("{source_host}/{rest}"), note)
        }
        _ => (format!("{source_host}/{s}"), None),
    }
}

/// The repository an image gets at a target: with the target's `repository: yyyy`,
/// `xxxx/image` becomes `yyyy/image` (the path before the last component is
/// replaced); with a namespace from `--dst HOST/NS`, it is prefixed; else kept.
pub fn target_repository(
    source_repository: &str,
    rewrite: Option<&str>,
    namespace: &str,
) -> String {
    let repo = match rewrite {
        Some(r) => {
            let last = source_repository
                .rsplit('/')
                .next()
                .unwrap_or(source_repository);
            format!("{r}/{last}")
        }
        None => source_repository.to_string(),
    };
    if namespace.is_empty() {
        repo
    } else {
        format!("{namespace}/{repo}")
    }
}

/// The target tags that more than one image is aimed at: `(repository:tag, the
/// images)`, each image named once, in the order given. A `repository:` rewrite
/// folds `xxxx/app` and `zzzz/app` into `yyyy/app`; upload refuses such a pair (the
/// tag would flip on every run), so save warns before the bundle crosses the gap.
pub fn shared_targets<'a>(
    aimed: impl IntoIterator<Item = (&'a str, String)>,
) -> Vec<(String, Vec<&'a str>)> {
    let mut by_target: Vec<(String, Vec<&'a str>)> = Vec::new();
    for (image, target) in aimed {
        match by_target.iter_mut().find(|(t, _)| *t == target) {
            Some((_, images)) if !images.contains(&image) => images.push(image),
            Some(_) => {}
            None => by_target.push((target, vec![image])),
        }
    }
    by_target.retain(|(_, images)| images.len() > 1);
    by_target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_folded_onto_one_tag_are_found() {
        let aimed = [
            ("src/xxxx/app:1", "yyyy/app:1".to_string()),
            ("src/zzzz/app:1", "yyyy/app:1".to_string()),
            ("src/xxxx/app:1", "yyyy/app:1".to_string()),
            ("src/xxxx/web:1", "yyyy/web:1".to_string()),
        ];
        assert_eq!(
            shared_targets(aimed),
            vec![(
                "yyyy/app:1".to_string(),
                vec!["src/xxxx/app:1", "src/zzzz/app:1"]
            )]
        );
    }

    #[test]
    fn renames_are_split() {
        assert_eq!(
            parse_line("a/b:1 -> c/d:2"),
            ListEntry {
                source: "a/b:1".into(),
                rename: Some("c/d:2".into())
            }
        );
        assert_eq!(
            parse_line(" a/b:1 "),
            ListEntry {
                source: "a/b:1".into(),
                rename: None
            }
        );
    }

    #[test]
    fn lines_are_pointed_at_the_source() {
        assert_eq!(
            at_source("team/app:1", "src:5000"),
            ("src:5000/team/app:1".into(), None)
        );
        let (r, note) = at_source("other.io/team/app:1", "src:5000");
        assert_eq!(r, "src:5000/team/app:1");
        assert!(note.unwrap().contains("other.io"));
        assert_eq!(
            at_source("http://src:5000/app:1", "src:5000"),
            ("src:5000/app:1".into(), None)
        );
    }

    #[test]
    fn repositories_are_rewritten_like_image_transmit() {
        assert_eq!(
            target_repository("xxxx/sub/image", Some("yyyy"), ""),
            "yyyy/image"
        );
        assert_eq!(
            target_repository("xxxx/image", None, "mirror"),
            "mirror/xxxx/image"
        );
        assert_eq!(target_repository("image", None, ""), "image");
    }
}
