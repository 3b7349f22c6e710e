//! `lang` (cfg) or `LANG` picks English or Chinese for the messages people read.

use crate::common::*;

#[test]
fn chinese_from_lang_or_cfg_and_english_otherwise() {
    let src = Registry::start();
    let img = push_image(
        &src,
        "lang/app",
        "1",
        Format::Oci,
        &[layer("lang-a", 10_000)],
        "lang-a",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let missing = format!("{}/lang/missing:1", src.host());

    let zh = ferry()
        .current_dir(work.path())
        .env("LANG", "zh_CN.UTF-8")
        .env_remove("LC_ALL")
        .args(["save", &img.reference, &missing, "--out", "zh"])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let zh = String::from_utf8_lossy(&zh);
    assert!(
        zh.contains("保存") && zh.contains("失败") && zh.contains("不存在"),
        "{zh}"
    );

    let en = ferry()
        .current_dir(work.path())
        .env("LANG", "C.UTF-8")
        .env_remove("LC_ALL")
        .args(["save", &img.reference, &missing, "--out", "en"])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let en = String::from_utf8_lossy(&en);
    assert!(
        en.contains("succeeded") && en.contains("not found") && !en.contains("失败"),
        "{en}"
    );

    std::fs::write(work.path().join("cfg.yaml"), "lang: zh_CN\n").unwrap();
    let cfg = ferry()
        .current_dir(work.path())
        .env("LANG", "C.UTF-8")
        .env_remove("LC_ALL")
        .args(["save", &img.reference, "--out", "cfg"])
        .assert()
        .success()
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&cfg).contains("成功"),
        "cfg lang wins over LANG"
    );
}

/// The English phrases left in `text`: three or more lowercase words in a row, which
/// a Chinese message would not have. References, digests and paths have no spaces;
/// lists of cfg keys (`a, b, c`) and `ferry ...` command examples are not prose.
pub(crate) fn english_phrases(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let mut run = Vec::new();
        for token in line.split([' ', ';', '(', ')']) {
            let w = token.trim_matches(|c: char| ".:,'\"".contains(c));
            let prose = w.len() >= 2
                && w.chars().all(|c| c.is_ascii_lowercase())
                && !token.ends_with(',')
                && !(run.is_empty() && w == "ferry");
            if prose {
                run.push(w);
                if run.len() >= 3 {
                    found.push(format!("{:?} in {line:?}", run.join(" ")));
                    break;
                }
            } else if !token.is_empty() {
                run.clear();
            }
        }
    }
    found
}

fn zh() -> assert_cmd::Command {
    let mut cmd = ferry();
    cmd.env("LANG", "zh_CN.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES");
    cmd
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A whole job in Chinese: save with a missing and a malformed image, ls, verify,
/// upload, a corrupt copy, bad cfg files, usage errors and help. Every line people
/// read is Chinese; only names, digests, paths and flags stay as they are.
#[test]
fn a_whole_job_speaks_chinese() {
    let src = Registry::start();
    let dst = Registry::start();
    let img = push_image(
        &src,
        "zh/app",
        "1",
        Format::Docker,
        &[layer("zh-a", 20_000)],
        "zh-a",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut record = |what: &str, out: &std::process::Output| {
        outputs.push((what.to_string(), text(out)));
    };

    let missing = format!("{}/zh/missing:1", src.host());
    let save = zh()
        .current_dir(work.path())
        .args([
            "save",
            &img.reference,
            &missing,
            "Not A Reference",
            "--out",
            "b",
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let meta = work
        .path()
        .join(String::from_utf8_lossy(&save.stdout).trim())
        .to_string_lossy()
        .into_owned();
    record("save", &save);
    assert!(text(&save).contains("无效") && text(&save).contains("不存在"));

    let ls = zh()
        .args(["ls", &meta])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(text(&ls).contains("数据文件"), "{}", text(&ls));
    record("ls", &ls);
    let verify = zh()
        .args(["verify", &meta])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(text(&verify).contains("完整"), "{}", text(&verify));
    record("verify", &verify);
    record(
        "upload of a bundle that lacks images",
        zh().args(["upload", &meta, "--dst", &dst.host()])
            .assert()
            .code(1)
            .get_output(),
    );
    let upload = zh()
        .args(["upload", &meta, "--dst", &dst.host(), "--allow-partial"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(text(&upload).contains("上传"), "{}", text(&upload));
    record("upload", &upload);
    record(
        "upload without a target",
        zh().current_dir(work.path())
            .args(["upload", &meta])
            .assert()
            .code(2)
            .get_output(),
    );

    // A copy of the bundle with a data file cut short.
    let bundle_dir = std::path::Path::new(&meta).parent().unwrap();
    let copy = work.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(bundle_dir).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, copy.join(p.file_name().unwrap())).unwrap();
    }
    let tar = std::fs::read_dir(&copy)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "tar"))
        .unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&tar).unwrap();
    f.set_len(f.metadata().unwrap().len() - 512).unwrap();
    let copied_meta = copy.join(std::path::Path::new(&meta).file_name().unwrap());
    let broken = zh()
        .arg("verify")
        .arg(&copied_meta)
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(text(&broken).contains("截断"), "{}", text(&broken));
    record("verify of a cut file", &broken);

    // Bad cfg files and command lines.
    for (name, yaml) in [
        ("unknown key", "maxconns: 3\n"),
        ("wrong type", "maxconn: lots\n"),
        ("bad registry", "source:\n- registry: \"ftp://x/y\"\n"),
        ("not a list", "source: 5\n"),
        ("broken yaml", "source: [\n"),
    ] {
        let cfg = work.path().join(format!("{}.yaml", name.replace(' ', "-")));
        std::fs::write(&cfg, yaml).unwrap();
        let out = zh()
            .arg("--config")
            .arg(&cfg)
            .args(["save", "x"])
            .assert()
            .failure()
            .get_output()
            .clone();
        record(name, &out);
    }
    let usage = zh()
        .args(["save", "--bogus"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(text(&usage).contains("未知参数"), "{}", text(&usage));
    record("unknown flag", &usage);
    record(
        "bad value",
        zh().args(["upload", &meta, "--jobs", "0"])
            .assert()
            .code(2)
            .get_output(),
    );
    record(
        "not a number",
        zh().args(["--retries", "abc", "save", "x"])
            .assert()
            .code(2)
            .get_output(),
    );
    let docker_config = work.path().join("docker");
    std::fs::create_dir_all(&docker_config).unwrap();
    std::fs::write(docker_config.join("config.json"), "{oops").unwrap();
    record(
        "malformed config.json",
        zh().env("DOCKER_CONFIG", &docker_config)
            .args(["logout", "example.com"])
            .assert()
            .code(1)
            .get_output(),
    );
    record(
        "unknown legacy flag",
        zh().args(["-src=x", "-bogus=1"])
            .assert()
            .code(2)
            .get_output(),
    );
    record(
        "legacy",
        zh().args(["-img=x.yaml"]).assert().code(2).get_output(),
    );
    record(
        "bad reference",
        zh().args(["inspect", "Bad Ref"])
            .assert()
            .code(1)
            .get_output(),
    );
    for help in [
        &["--help"][..],
        &["save", "--help"],
        &["upload", "-h"],
        &["sync", "--help"],
        &["help", "help"],
    ] {
        let out = zh().args(help).assert().success().get_output().clone();
        assert!(text(&out).contains("用法:"), "{}", text(&out));
        record(&format!("{help:?}"), &out);
    }

    let english: Vec<String> = outputs
        .iter()
        .flat_map(|(what, out)| {
            english_phrases(out)
                .into_iter()
                .map(move |p| format!("{what}: {p}"))
        })
        .collect();
    if std::env::var_os("FERRY_SHOW_OUTPUT").is_some() {
        for (what, out) in &outputs {
            eprintln!("== {what}\n{out}");
        }
    }
    assert!(english.is_empty(), "English left:\n{}", english.join("\n"));
}
