//! `lang` (cfg) or `LANG` picks English or Chinese for the messages people read.

mod common;
use common::*;

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
