//! containerd as an endpoint (a sink), as image-transmit's `-dst=ctr` does it:
//! `ctr -a SOCKET -n NAMESPACE images import ... -` fed a docker archive on its
//! stdin as the blobs arrive (no archive on disk).
//!
//! The archive carries an OCI layout beside `manifest.json` (docker ≥ 25's
//! layout), and containerd imports that layout when it is there: the manifests
//! keep their exact bytes, so containerd's digest of an image is its manifest
//! digest, and each image is named by its `io.containerd.image.name` annotation,
//! the full reference it is given (`127.0.0.1:5000/library/base:1`).

use super::feed_sink::{ArchiveConsumer, FeedSink};
use super::{Result, TransportError};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// Where containerd listens when neither the caller nor `CONTAINERD_ADDRESS` says.
pub const DEFAULT_ADDRESS: &str = "/run/containerd/containerd.sock";
/// The namespace images go to unless one is named (ctr's own default).
pub const DEFAULT_NAMESPACE: &str = "default";
/// The most of ctr's output kept for an error message.
const MAX_OUTPUT: usize = 64 * 1024;

/// What went wrong handing images to containerd.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error("{}", crate::tr!(
        "no containerd socket at {} (set CONTAINERD_ADDRESS=PATH)",
        "{} 处没有 containerd 的套接字 (请设置 CONTAINERD_ADDRESS=PATH)",
        .0.display()
    ))]
    NoSocket(PathBuf),
    #[error("{}", crate::tr!(
        "{0:?} is not a containerd namespace (letters, digits, '.', '_', '-')",
        "{0:?} 不是 containerd 命名空间 (字母、数字、'.'、'_'、'-')",
        .0
    ))]
    BadNamespace(String),
    #[error("{}", crate::tr!(
        "cannot run {}: {}",
        "无法运行 {}: {}",
        .program.display(), crate::i18n::io_error(.source)
    ))]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", crate::tr!(
        "`{}` failed ({}): {}",
        "`{}` 失败 ({}): {}",
        .command, .status, .stderr
    ))]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

/// Which containerd, which namespace, which `ctr`.
#[derive(Clone, Debug)]
pub struct ContainerdOptions {
    /// The grpc socket; `None` means `CONTAINERD_ADDRESS`, else [`DEFAULT_ADDRESS`].
    pub address: Option<PathBuf>,
    /// [`DEFAULT_NAMESPACE`] unless named (`k8s.io` is kubernetes').
    pub namespace: String,
    /// The `ctr` binary (found on PATH by default).
    pub ctr: PathBuf,
}

impl Default for ContainerdOptions {
    fn default() -> Self {
        ContainerdOptions {
            address: None,
            namespace: DEFAULT_NAMESPACE.to_string(),
            ctr: PathBuf::from("ctr"),
        }
    }
}

impl ContainerdOptions {
    /// Options for a namespace (`None` or empty: the default one).
    pub fn namespace(namespace: Option<&str>) -> ContainerdOptions {
        ContainerdOptions {
            namespace: namespace
                .filter(|n| !n.is_empty())
                .unwrap_or(DEFAULT_NAMESPACE)
                .to_string(),
            ..ContainerdOptions::default()
        }
    }

    /// The socket ctr will be pointed at.
    pub fn resolved_address(&self) -> PathBuf {
        self.address.clone().unwrap_or_else(|| {
            std::env::var_os("CONTAINERD_ADDRESS")
                .filter(|a| !a.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_ADDRESS))
        })
    }

    /// `ctr -a SOCKET -n NAMESPACE`.
    fn command(&self, address: &Path) -> Command {
        let mut cmd = Command::new(&self.ctr);
        cmd.arg("-a").arg(address).arg("-n").arg(&self.namespace);
        cmd
    }
}

/// containerd's namespace grammar (a DNS-label-like identifier).
fn valid_namespace(ns: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    !ns.is_empty()
        && ns.len() <= 76
        && ns.chars().all(ok_char)
        && ns.starts_with(|c: char| c.is_ascii_alphanumeric())
        && ns.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// The last [`MAX_OUTPUT`] bytes a child wrote to a pipe, read on a thread of
/// its own (so that ctr never blocks on a full pipe).
struct OutputTail(std::thread::JoinHandle<Vec<u8>>);

impl OutputTail {
    fn spawn(mut pipe: impl Read + Send + 'static) -> OutputTail {
        OutputTail(std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(buf.get(..n).unwrap_or_default());
                if kept.len() > MAX_OUTPUT {
                    let cut = kept.len() - MAX_OUTPUT;
                    kept.drain(..cut);
                }
            }
            kept
        }))
    }

    fn text(self) -> String {
        let bytes = self.0.join().unwrap_or_default();
        crate::text::sanitize(String::from_utf8_lossy(&bytes).trim()).into_owned()
    }
}

/// A running `ctr images import`: the process and the tails of its output.
pub struct Import {
    child: Child,
    stdout: Option<OutputTail>,
    stderr: Option<OutputTail>,
    command: String,
}

impl Drop for Import {
    /// An import dropped before it finished is killed: containerd keeps nothing
    /// of an archive that did not end.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Import {
    /// Waits for ctr after its stdin was closed; its stderr when it failed.
    fn wait(mut self) -> std::result::Result<(), ContainerdError> {
        let status = self.child.wait();
        let stderr = self.stderr.take().map(OutputTail::text).unwrap_or_default();
        let stdout = self.stdout.take().map(OutputTail::text).unwrap_or_default();
        let command = self.command.clone();
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(ContainerdError::Failed {
                command,
                status: s.to_string(),
                stderr: if stderr.is_empty() { stdout } else { stderr },
            }),
            Err(e) => Err(ContainerdError::Failed {
                command,
                status: crate::i18n::io_error(&e),
                stderr,
            }),
        }
    }
}

/// A sink into containerd; see the module docs.
pub type ContainerdSink = FeedSink<CtrImport>;

/// `ctr images import` as an [`ArchiveConsumer`].
pub struct CtrImport {
    options: ContainerdOptions,
    address: PathBuf,
}

impl FeedSink<CtrImport> {
    /// Checks the namespace and that containerd's socket is there (so that a run
    /// without it fails before it reads anything), and returns a sink into it.
    pub fn open(options: ContainerdOptions) -> Result<ContainerdSink> {
        if !valid_namespace(&options.namespace) {
            return Err(ContainerdError::BadNamespace(options.namespace.clone()).into());
        }
        let address = options.resolved_address();
        if !address.exists() {
            return Err(ContainerdError::NoSocket(address).into());
        }
        Ok(FeedSink::new(CtrImport { options, address }))
    }

    pub fn namespace(&self) -> &str {
        &self.consumer().options.namespace
    }

    pub fn address(&self) -> &Path {
        &self.consumer().address
    }
}

/// ctr's flags: every platform's content is kept (the archive holds the one
/// image that was chosen), images without a name are kept by digest, and the
/// archive comes on stdin.
const IMPORT_ARGS: [&str; 6] = [
    "images",
    "import",
    "--all-platforms",
    "--digests",
    "--skip-digest-for-named",
    "-",
];

impl CtrImport {
    async fn wait_import(&self, import: Import) -> Result<()> {
        tokio::task::spawn_blocking(move || import.wait())
            .await
            .map_err(|e| TransportError::io(self.describe(), std::io::Error::other(e)))?
            .map_err(TransportError::from)
    }
}

#[async_trait::async_trait]
impl ArchiveConsumer for CtrImport {
    type Out = ChildStdin;
    type Run = Import;

    fn describe(&self) -> String {
        format!(
            "containerd:{} ({})",
            self.options.namespace,
            self.address.display()
        )
    }

    fn start(&self) -> Result<(ChildStdin, Import)> {
        let command = format!(
            "{} -a {} -n {} {}",
            self.options.ctr.display(),
            self.address.display(),
            self.options.namespace,
            IMPORT_ARGS.join(" ")
        );
        let spawn_error = |source| ContainerdError::Spawn {
            program: self.options.ctr.clone(),
            source,
        };
        let mut child = self
            .options
            .command(&self.address)
            .args(IMPORT_ARGS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let mut import = Import {
            child,
            stdout: stdout.map(OutputTail::spawn),
            stderr: stderr.map(OutputTail::spawn),
            command,
        };
        match stdin {
            Some(stdin) => Ok((stdin, import)),
            None => {
                let _ = import.child.kill();
                Err(spawn_error(std::io::Error::other("no stdin")).into())
            }
        }
    }

    /// Closing stdin is the end of the archive for ctr.
    fn close(out: ChildStdin) -> std::io::Result<()> {
        drop(out);
        Ok(())
    }

    /// ctr's exit: its stderr is the error when it fails.
    async fn wait(&self, run: Import) -> Result<Vec<String>> {
        self.wait_import(run).await.map(|()| Vec::new())
    }

    /// When the write failed because ctr exited, ctr's own message says why.
    async fn abort(&self, run: Import, error: std::io::Error) -> TransportError {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            if let Err(ctr_error) = self.wait_import(run).await {
                return ctr_error;
            }
        }
        TransportError::io(self.describe(), error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_follow_containerd_grammar() {
        for ok in ["default", "k8s.io", "moby", "a-b_c.d", "x1"] {
            assert!(valid_namespace(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a/b", "a b", "../x", &"x".repeat(77)] {
            assert!(!valid_namespace(bad), "{bad}");
        }
    }

    #[test]
    fn a_missing_socket_is_named_before_anything_runs() {
        let options = ContainerdOptions {
            address: Some(PathBuf::from("/nonexistent/containerd.sock")),
            ..ContainerdOptions::namespace(Some("k8s.io"))
        };
        let err = ContainerdSink::open(options).err().unwrap().to_string();
        assert!(err.contains("/nonexistent/containerd.sock"), "{err}");
        assert_eq!(ContainerdOptions::namespace(None).namespace, "default");
        assert_eq!(ContainerdOptions::namespace(Some("")).namespace, "default");
    }
}
