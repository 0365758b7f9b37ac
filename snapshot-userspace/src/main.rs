//! `snapshot`: the controller's command line.

use snapshot_userspace::{cli, session::target};

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == target::HELD_EXEC) {
        std::process::exit(target::held_exec_main(&args));
    }
    // Before any thread exists: a SIGUSR1 (a snapshot request) can then never kill the
    // recorder, however early it comes; `snapshot record` takes them on a thread of its own.
    if let Err(e) = snapshot_userspace::sys::block_signal(libc::SIGUSR1) {
        eprintln!("snapshot: cannot block SIGUSR1: {e}");
        std::process::exit(1);
    }
    cli::status::ui::init_logging();
    let cli = match cli::parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(usage) => usage.exit(),
            Err(e) => {
                eprintln!("snapshot: error: {e:#}");
                std::process::exit(2);
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("snapshot: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // `snapshot show … | head`: the reader went away, which is not an error.
            let broken_pipe = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                std::process::exit(0);
            }
            eprintln!("snapshot: error: {e:#}");
            std::process::exit(1);
        }
    }
}
