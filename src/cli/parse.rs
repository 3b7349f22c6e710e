//! Turning the process arguments into a [`Cli`], in the chosen language: the language
//! (cfg `lang`, `--opt lang=...`, else `LANG`) is known before clap writes any help or
//! usage error.

use super::args::Cli;
use clap::{CommandFactory, FromArgMatches};
use std::path::Path;

/// Parses the (already legacy-translated) arguments; prints help, version or a usage
/// error and exits as clap does.
pub fn parse(args: Vec<String>) -> Cli {
    init_language(&args);
    let mut cmd = Cli::command();
    if crate::i18n::is_chinese() {
        cmd = super::help_zh::localize(cmd);
    }
    let parsed = cmd
        .try_get_matches_from_mut(args)
        .and_then(|m| Cli::from_arg_matches(&m));
    match parsed {
        Ok(cli) => cli,
        Err(err) => {
            let err = err.format(&mut cmd);
            if crate::i18n::is_chinese() {
                if let Some(text) = super::help_zh::render_error(&err) {
                    eprint!("{text}");
                    std::process::exit(err.exit_code());
                }
            }
            err.exit()
        }
    }
}

/// Parses arguments without printing or exiting, in the language already chosen:
/// `ferry ui` checks the command lines it builds with the same parser, and shows
/// clap's message when one is refused.
pub fn try_parse(args: Vec<String>) -> Result<Cli, String> {
    let mut cmd = Cli::command();
    if crate::i18n::is_chinese() {
        cmd = super::help_zh::localize(cmd);
    }
    cmd.try_get_matches_from_mut(args)
        .and_then(|m| Cli::from_arg_matches(&m))
        .map_err(|err| {
            let err = err.format(&mut cmd);
            crate::i18n::is_chinese()
                .then(|| super::help_zh::render_error(&err))
                .flatten()
                .unwrap_or_else(|| err.to_string())
        })
}

/// Chooses the language from the command line, the cfg file or the environment.
pub fn init_language(args: &[String]) {
    crate::i18n::init(early_lang(args).as_deref());
}

/// The `lang` that the run will use, read before parsing: `--opt lang=...`, else the
/// `lang:` line of the cfg file that `--config` names or that is found by default.
fn early_lang(args: &[String]) -> Option<String> {
    let value_of = |flag: &str| {
        args.iter().enumerate().find_map(|(i, a)| {
            a.strip_prefix(&format!("{flag}="))
                .map(str::to_string)
                .or_else(|| (a == flag).then(|| args.get(i + 1).cloned()).flatten())
        })
    };
    if let Some(opt) = value_of("--opt").or_else(|| value_of("-opt")) {
        if let Some(lang) = opt
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("lang="))
        {
            return Some(lang.to_string());
        }
    }
    let explicit = value_of("--config");
    let path = crate::config::find(explicit.as_deref().map(Path::new))?;
    lang_line(&std::fs::read_to_string(path).ok()?)
}

/// The value of a top-level `lang:` key, without a full parse: a broken cfg file is
/// reported later, by the real loader.
fn lang_line(yaml: &str) -> Option<String> {
    yaml.lines().find_map(|line| {
        let value = line.strip_prefix("lang:")?;
        let value = value.split('#').next()?.trim().trim_matches(['"', '\'']);
        (!value.is_empty()).then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lang_comes_from_opt_before_the_cfg_file() {
        let args: Vec<String> = ["ferry", "--opt", "maxconn=3,lang=zh_CN", "save"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(early_lang(&args).as_deref(), Some("zh_CN"));
    }

    #[test]
    fn lang_line_reads_only_the_top_level_key() {
        assert_eq!(
            lang_line("source: []\nlang: \"zh_CN\" # Chinese\n").as_deref(),
            Some("zh_CN")
        );
        assert_eq!(lang_line("  lang: zh_CN\n"), None);
        assert_eq!(lang_line("lang:\n"), None);
    }
}
