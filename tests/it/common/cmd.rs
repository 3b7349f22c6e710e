//! One way to run the ferry binary in a test (after ripgrep's `TestCommand`):
//! a builder with the usual knobs, and an [`Output`] whose assertions print the
//! whole command line, exit status, stdout and stderr when they fail.
//!
//! ```ignore
//! let meta = FerryCmd::new().args(["save", &reference, "--out"]).arg(&out).ok().meta();
//! FerryCmd::new().args(["upload", ...]).fails_with(2).assert_stderr_has(&["--dst"]);
//! ```
//!
//! By default ferry runs in an empty scratch folder (so no `./cfg.yaml` or
//! `./data/` of the checkout changes its defaults), in English (`LANG=C.UTF-8`,
//! no `LC_ALL`), and is killed after 10 minutes (a safeguard against a hung
//! process, not a timing assertion).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A ferry command line being built; run it with [`FerryCmd::output`],
/// [`FerryCmd::ok`], [`FerryCmd::fails`] or [`FerryCmd::fails_with`].
pub struct FerryCmd {
    cmd: assert_cmd::Command,
    /// The command line as typed, for messages.
    what: Vec<String>,
    cwd: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

impl Default for FerryCmd {
    fn default() -> Self {
        Self::new()
    }
}

impl FerryCmd {
    pub fn new() -> FerryCmd {
        let mut cmd = super::ferry();
        cmd.env("LANG", "C.UTF-8")
            .env_remove("LC_ALL")
            .env_remove("LANGUAGE")
            .timeout(Duration::from_secs(600));
        FerryCmd {
            cmd,
            what: vec!["ferry".into()],
            cwd: None,
            stdin: None,
        }
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut FerryCmd {
        self.what.push(arg.as_ref().to_string_lossy().into_owned());
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut FerryCmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self.arg(a);
        }
        self
    }

    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut FerryCmd {
        self.cmd.env(key, value);
        self
    }

    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut FerryCmd {
        self.cmd.env_remove(key);
        self
    }

    /// Runs ferry in `dir` instead of an empty scratch folder.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut FerryCmd {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// What ferry reads on standard input (else nothing: stdin is empty).
    pub fn stdin(&mut self, input: impl Into<Vec<u8>>) -> &mut FerryCmd {
        self.stdin = Some(input.into());
        self
    }

    /// Kills ferry after `limit` instead of 10 minutes.
    pub fn timeout(&mut self, limit: Duration) -> &mut FerryCmd {
        self.cmd.timeout(limit);
        self
    }

    /// Runs ferry to its end, whatever its exit status.
    pub fn output(&mut self) -> Output {
        let scratch;
        let cwd = match &self.cwd {
            Some(dir) => dir.as_path(),
            None => {
                scratch = tempfile::tempdir().expect("scratch folder");
                scratch.path()
            }
        };
        self.cmd.current_dir(cwd);
        if let Some(input) = &self.stdin {
            self.cmd.write_stdin(input.clone());
        }
        let mut what = self.what.join(" ");
        if self.stdin.is_some() {
            what.push_str(" < (stdin)");
        }
        let out = self
            .cmd
            .output()
            .unwrap_or_else(|e| panic!("running {what}: {e}"));
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            what,
        }
    }

    /// Runs ferry, which must exit 0.
    pub fn ok(&mut self) -> Output {
        let out = self.output();
        out.assert_ok();
        out
    }

    /// Runs ferry, which must fail (any non-zero status).
    pub fn fails(&mut self) -> Output {
        let out = self.output();
        out.assert_failed();
        out
    }

    /// Runs ferry, which must exit with `code`.
    pub fn fails_with(&mut self, code: i32) -> Output {
        let out = self.output();
        out.assert_code(code);
        out
    }

    /// Runs ferry, which must exit 0; its standard output.
    pub fn stdout_str(&mut self) -> String {
        self.ok().stdout
    }
}

/// `ferry save REFS... --out OUT -q EXTRA...`, which must succeed; the meta path
/// it printed (give OUT as an absolute path).
pub fn save_bundle(refs: &[&str], out: &Path, extra: &[&str]) -> PathBuf {
    FerryCmd::new()
        .arg("save")
        .args(refs)
        .arg("--out")
        .arg(out)
        .arg("-q")
        .args(extra)
        .ok()
        .meta_only()
}

/// A finished ferry run. Its `Display` is the whole story: command line, exit
/// status, stdout and stderr.
#[derive(Clone, Debug)]
pub struct Output {
    /// `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for messages.
    pub what: String,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} exited with {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn assert_ok(&self) -> &Output {
        assert!(self.success(), "expected success: {self}");
        self
    }

    pub fn assert_failed(&self) -> &Output {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "expected a failure: {self}"
        );
        self
    }

    pub fn assert_code(&self, code: i32) -> &Output {
        assert_eq!(self.code, Some(code), "expected exit {code}: {self}");
        self
    }

    /// Asserts that stderr mentions every one of `needles`.
    pub fn assert_stderr_has(&self, needles: &[&str]) -> &Output {
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr does not mention {n:?}: {self}"
            );
        }
        self
    }

    /// The meta path `ferry save` printed as the only line of stdout (what scripts
    /// read), which must name a file (give `--out` as an absolute path).
    pub fn meta_only(&self) -> PathBuf {
        let lines: Vec<&str> = self.stdout.lines().collect();
        let [line] = lines.as_slice() else {
            panic!("expected the meta path alone on stdout: {self}");
        };
        let path = PathBuf::from(line);
        assert!(
            path.is_file(),
            "printed meta path {path:?} is not a file: {self}"
        );
        path
    }

    /// The last non-empty line of stdout: the meta path `ferry save` prints
    /// (relative to the folder ferry ran in, unless `--out` was absolute).
    pub fn meta(&self) -> PathBuf {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("ferry printed no meta path: {self}"));
        PathBuf::from(line.trim())
    }
}
