//! Entry point: parse the command line, wire Ctrl-C/SIGTERM to cancellation, run,
//! and turn the result into an exit status.

use ferry::cli::run::{is_daemon, is_usage_error, run, Outcome};
use ferry::engine::report::describe;
use ferry::i18n::t;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    ferry::cli::parse::init_language(&args);
    let args = match ferry::cli::legacy::translate(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{}: {e}", t("error", "错误"));
            return ExitCode::from(2);
        }
    };
    let cli = ferry::cli::parse::parse(args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "{}: {e}",
                t(
                    "error: cannot start the async runtime",
                    "错误: 无法启动异步运行时"
                )
            );
            return ExitCode::from(1);
        }
    };
    let cancel = CancellationToken::new();
    let daemon = is_daemon(&cli);
    runtime.block_on(async {
        spawn_signal_handler(cancel.clone(), daemon);
        // A run that finished reports how it went, even if Ctrl-C came at its very
        // end (the bundle is complete: "run again" would be wrong advice).
        match run(cli, cancel.clone()).await {
            Ok(Outcome::Success | Outcome::Stopped) => ExitCode::SUCCESS,
            Ok(Outcome::Failed) => ExitCode::from(1),
            Err(e) => {
                let text = describe(&e);
                let json = ferry::engine::report::json_logs();
                if json {
                    eprintln!("{}", ferry::engine::report::json_line("error", &text));
                } else {
                    eprintln!("{}: {text}", t("error", "错误"));
                }
                if cancel.is_cancelled() {
                    // Said once: most errors of a stopped run already say so.
                    if !mentions_interruption(&text) && !json {
                        eprintln!("{}", t("interrupted", "已中断"));
                    }
                    ExitCode::from(130)
                } else if is_usage_error(&e) {
                    ExitCode::from(2)
                } else {
                    ExitCode::from(1)
                }
            }
        }
    })
}

/// Whether an error message already says that the run was interrupted.
fn mentions_interruption(text: &str) -> bool {
    text.to_lowercase().contains("interrupted") || text.contains("中断")
}

/// The first Ctrl-C or SIGTERM cancels the work, which stops downloads promptly and
/// leaves no meta; a second Ctrl-C exits at once. A daemon (`serve`, `sync
/// --interval`) has nothing to resume: it is told to stop, and says when it has.
///
/// The handlers are installed here, before the command starts, not in the spawned
/// task: a task may first run after `serve` has said it is listening, and a SIGTERM
/// in between would kill the process with the default action instead of stopping it.
fn spawn_signal_handler(cancel: CancellationToken, daemon: bool) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        let note = if daemon {
            t(
                "stopping (Ctrl-C again to exit at once)",
                "正在停止 (再按一次 Ctrl-C 立即退出)",
            )
        } else {
            t(
                "stopping: transfers in progress are dropped and nothing incomplete is marked done; run the same command again to resume (Ctrl-C again to exit at once)",
                "正在停止: 放弃进行中的传输, 不完整的内容不会被当作已完成; 再次运行同一命令即可继续 (再按一次 Ctrl-C 立即退出)",
            )
        };
        if ferry::engine::report::json_logs() {
            eprintln!("{}", ferry::engine::report::json_line("warn", note));
        } else {
            eprintln!("{note}");
        }
        cancel.cancel();
        let _ = int.recv().await;
        std::process::exit(130);
    });
}
