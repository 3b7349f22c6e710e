//! image-transmit's command line (`ferry -src=nj -lst=img.lst`, `ferry -dst=gz -img=META`),
//! translated into ferry's subcommands so cron jobs and CI scripts keep working.

const VALUE_FLAGS: [&str; 7] = ["src", "dst", "lst", "inc", "img", "out", "opt"];

/// Whether `arg` is one of image-transmit's flags (`-src=x`, `-src`, `--lst=y`...).
fn legacy_flag(arg: &str) -> Option<(&str, Option<&str>)> {
    let body = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    let (name, value) = match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    };
    (VALUE_FLAGS.contains(&name) || name == "watch").then_some((name, value))
}

/// `-bogus=1` in an image-transmit command line: a word after one dash that is not
/// its flag and does not start with one of ferry's short flags (`-qv`, `-j4`,
/// `-odir` stay clap's); clap would read it as `-b -o -g...` and name the wrong letter.
fn is_unknown_single_dash_flag(arg: &str) -> bool {
    const SHORT_FLAGS: &str = "qvhVjlod";
    match arg.strip_prefix('-') {
        Some(body) if !body.starts_with('-') && body.len() > 1 => {
            body.contains('=') || !body.starts_with(|c| SHORT_FLAGS.contains(c))
        }
        _ => false,
    }
}

/// The error for a word that looks like an image-transmit flag but is none: names it
/// as written, and the flag it was probably meant to be.
fn unknown_flag(arg: &str) -> String {
    let body = arg.trim_start_matches('-');
    let name = body.split_once('=').map_or(body, |(n, _)| n);
    let near = VALUE_FLAGS
        .iter()
        .chain(std::iter::once(&"watch"))
        .find(|f| edit_distance(name, f) <= 2 && name.len() + 1 >= f.len());
    let hint = match near {
        Some(f) => crate::tr!(" (did you mean -{f}?)", " (是否想用 -{f}?)"),
        None => String::new(),
    };
    crate::tr!(
        "unknown flag {arg}{hint}; image-transmit's flags are -src -dst -lst -inc -img -out -opt -watch",
        "未知的参数 {arg}{hint}; image-transmit 的参数为 -src -dst -lst -inc -img -out -opt -watch"
    )
}

/// Levenshtein distance, for short flag names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(usize::MAX);
            let left = row.get(j).copied().unwrap_or(usize::MAX);
            let best = (diagonal + usize::from(ca != *cb))
                .min(above.saturating_add(1))
                .min(left.saturating_add(1));
            diagonal = above;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = best;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

/// Rewrites image-transmit arguments into ferry's; other command lines are returned
/// unchanged. ferry's own global flags (`--config`, `-q`, `-v`...) may be mixed in.
pub fn translate(args: Vec<String>) -> Result<Vec<String>, String> {
    // ferry's own subcommands (and their aliases) as clap knows them, so that a new
    // one is never taken for an image-transmit command line.
    let command = <super::args::Cli as clap::CommandFactory>::command();
    let subcommand = |a: &str| {
        a == "help"
            || command
                .get_subcommands()
                .any(|c| c.get_name() == a || c.get_all_aliases().any(|alias| alias == a))
    };
    let modern = args.iter().skip(1).any(|a| subcommand(a));
    if modern {
        return Ok(args);
    }
    if !args.iter().skip(1).any(|a| legacy_flag(a).is_some()) {
        // `-srcc=hq` alone: clap would take it for `-s -r -c...` and name `-s`.
        if let Some(arg) = args.iter().skip(1).find(|a| is_unknown_single_dash_flag(a)) {
            return Err(unknown_flag(arg));
        }
        return Ok(args);
    }
    let mut given: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    let mut passthrough = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let arg = &args[i];
        match legacy_flag(arg) {
            Some(("watch", v)) => {
                if v.is_none_or(|v| v == "true") {
                    given.insert("watch", "true".into());
                }
            }
            Some((name, Some(v))) => {
                given.insert(name, v.to_string());
            }
            Some((name, None)) => {
                let v = args
                    .get(i + 1)
                    .ok_or_else(|| crate::tr!("-{name} needs a value", "-{name} 需要一个值"))?;
                given.insert(name, v.clone());
                i += 1;
            }
            None if is_unknown_single_dash_flag(arg) => return Err(unknown_flag(arg)),
            None => passthrough.push(arg.clone()),
        }
        i += 1;
    }
    let mut out = vec![args[0].clone()];
    let get = |k: &str| given.get(k).cloned();
    match (get("src"), get("dst"), get("img")) {
        (_, Some(dst), Some(img)) => {
            out.extend(["upload".into(), img, "--dst-name".into(), dst]);
        }
        (Some(src), Some(dst), None) => {
            out.extend([
                "sync".into(),
                "--src".into(),
                src,
                "--dst-name".into(),
                dst,
                "--list".into(),
                get("lst").unwrap_or_else(|| "-".into()),
            ]);
            if given.contains_key("watch") {
                out.push("--watch".into());
            }
        }
        (Some(src), None, None) => {
            out.extend([
                "save".into(),
                "--src".into(),
                src,
                "--list".into(),
                get("lst").unwrap_or_else(|| "-".into()),
            ]);
            if let Some(inc) = get("inc") {
                out.extend(["--inc".into(), inc]);
            }
            if let Some(prefix) = get("out") {
                if prefix.contains('/') || prefix.contains('\\') {
                    return Err(crate::tr!("-out={prefix}: ferry takes a file prefix here; give the folder with --out DIR", "-out={prefix}: ferry 在这里接受的是文件名前缀; 输出目录请用 --out DIR 指定"));
                }
                out.extend(["--prefix".into(), prefix]);
            }
        }
        (None, Some(_), None) => {
            return Err(crate::tr!(
                "-dst needs -img=META (upload) or -src=NAME (direct mode)",
                "-dst 需要 -img=META (上传) 或 -src=NAME (直接同步)"
            ))
        }
        (_, None, Some(_)) => {
            return Err(crate::tr!(
                "-img needs -dst=NAME: the target registry to upload to",
                "-img 需要 -dst=NAME: 要上传到的目标仓库"
            ))
        }
        (None, None, None) => {
            return Err(crate::tr!(
                "give -src=NAME to save, or -dst=NAME -img=META to upload (see ferry --help)",
                "请用 -src=NAME 保存, 或用 -dst=NAME -img=META 上传 (见 ferry --help)"
            ))
        }
    }
    if given.contains_key("watch") && !out.iter().any(|a| a == "--watch") {
        return Err(crate::tr!(
            "-watch keeps a direct sync (-src with -dst) running",
            "-watch 用于让直接同步 (-src 与 -dst 同时给出) 持续运行"
        ));
    }
    if let Some(opt) = get("opt") {
        out.extend(["--opt".into(), opt]);
    }
    out.extend(passthrough);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unknown_single_dash_word_is_named_whole() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let e = super::translate(args(&["ferry", "-src=hq", "-bogus=1"])).unwrap_err();
        assert!(e.contains("-bogus=1"), "{e}");
        // A misspelt flag alone is named as written, with the flag it resembles.
        let e = super::translate(args(&["ferry", "-srcc=hq"])).unwrap_err();
        assert!(e.contains("-srcc=hq") && e.contains("-src?"), "{e}");
        let e = super::translate(args(&["ferry", "-dst=gz", "-imgg=m"])).unwrap_err();
        assert!(e.contains("-imgg=m") && e.contains("-img?"), "{e}");
        assert_eq!(super::edit_distance("srcc", "src"), 1);
        assert_eq!(super::edit_distance("", "abc"), 3);
        assert!(super::translate(args(&["ferry", "-V"])).is_ok());
        assert!(super::translate(args(&["ferry", "-src=hq", "-qv"])).is_ok());
        assert!(super::translate(args(&["ferry", "-src=hq", "-lst=l", "-j4"])).is_ok());
        assert!(super::translate(args(&["ferry", "-src=hq", "-lst=-"])).is_ok());
        let modern = args(&["ferry", "ls", "m.yaml", "--opt", "lang=zh_CN"]);
        assert_eq!(super::translate(modern.clone()).unwrap(), modern);
    }

    #[test]
    fn every_subcommand_is_left_to_clap() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for line in [
            &[
                "ferry",
                "copy",
                "docker://h/a:1",
                "oci:/tmp/x",
                "--opt",
                "lang=zh_CN",
            ][..],
            &["ferry", "sign", "m.yaml", "--opt", "lang=zh_CN"],
            &["ferry", "ui", "--opt", "lang=zh_CN"],
            &[
                "ferry",
                "-q",
                "copy",
                "bundle:m.yaml",
                "docker://h/ns",
                "-out=x",
            ],
        ] {
            let line = args(line);
            assert_eq!(super::translate(line.clone()).unwrap(), line);
        }
        // Every subcommand clap knows, help included.
        let cli = <crate::cli::args::Cli as clap::CommandFactory>::command();
        for name in cli.get_subcommands().map(|c| c.get_name().to_string()) {
            let line = args(&["ferry", &name, "-src=x"]);
            assert_eq!(super::translate(line.clone()).unwrap(), line, "{name}");
        }
    }

    use super::*;

    fn t(args: &[&str]) -> Result<Vec<String>, String> {
        translate(args.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn save_and_upload_forms_translate() {
        assert_eq!(
            t(&[
                "ferry",
                "-src=nj",
                "-lst=img.lst",
                "-inc=old_meta.yaml",
                "-out=team"
            ])
            .unwrap(),
            vec![
                "ferry",
                "save",
                "--src",
                "nj",
                "--list",
                "img.lst",
                "--inc",
                "old_meta.yaml",
                "--prefix",
                "team"
            ]
        );
        assert_eq!(
            t(&["ferry", "-src", "nj"]).unwrap(),
            vec!["ferry", "save", "--src", "nj", "--list", "-"]
        );
        assert_eq!(
            t(&[
                "ferry",
                "-dst=gz",
                "-img=m.yaml",
                "--config",
                "c.yaml",
                "-opt=maxconn=2"
            ])
            .unwrap(),
            vec![
                "ferry",
                "upload",
                "m.yaml",
                "--dst-name",
                "gz",
                "--opt",
                "maxconn=2",
                "--config",
                "c.yaml"
            ]
        );
    }

    #[test]
    fn modern_command_lines_pass_unchanged() {
        let modern = vec![
            "ferry".to_string(),
            "save".into(),
            "--out".into(),
            "x".into(),
        ];
        assert_eq!(translate(modern.clone()).unwrap(), modern);
    }

    #[test]
    fn incomplete_legacy_lines_are_errors() {
        assert!(t(&["ferry", "-img=m.yaml"]).is_err());
        assert_eq!(
            t(&["ferry", "-src=a", "-dst=b", "-lst=l", "-watch"]).unwrap(),
            vec![
                "ferry",
                "sync",
                "--src",
                "a",
                "--dst-name",
                "b",
                "--list",
                "l",
                "--watch"
            ]
        );
        assert!(t(&["ferry", "-src=a", "-watch"]).is_err());
        assert!(t(&["ferry", "-src"]).is_err());
    }
}
