//! `dynamics`: run the Dynamics 365 connector component from the command line. This file only
//! parses the command line and hands it to the command's own module in `commands/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod progress;

use commands::ActionFailed;

/// A long read hands the host a large output at once (30 MB for 100,000 records) and brings
/// in page after page of a megabyte or more, call after call. Measured on `benches/read_all`
/// (emulator in the same process): with glibc's allocator a 100,000-record read took about
/// 45,000 page faults, with mimalloc about 7,900 (most of the rest are the guest's own fresh
/// memory); reads ran 5-10% faster. The benchmarks that share `benches/support/loopback.rs`
/// use it too, so their figures are this binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "dynamics",
    version,
    about = "Run the Microsoft Dynamics 365 connector component"
)]
struct Cli {
    #[command(flatten)]
    global: commands::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the component's actions.
    Actions(commands::actions::Args),
    /// Show one action's inputs: keys, types, defaults and comments.
    Describe(commands::describe::Args),
    /// Run an action and print its JSON output.
    Invoke(commands::invoke::Args),
    /// Sign in an auth-code connection in a browser and store its tokens.
    Login(commands::login::Args),
    /// Show which connections hold tokens and when they expire (never the tokens).
    Status(commands::status::Args),
    /// Forget a connection's stored tokens.
    Logout(commands::logout::Args),
    /// Test a connection: sign in if needed, WhoAmI, user and business unit names.
    TestConnection(commands::test_connection::Args),
    /// Serve the webhook trigger on a loopback port, printing each event. With --register the
    /// trigger registers itself with the environment first, and unregisters when --seconds runs
    /// out.
    ServeWebhooks(commands::serve_webhooks::Args),
    /// Poll the New and Updated Records trigger every interval, printing each event.
    Poll(commands::poll::Args),
    /// Extract new and updated rows of tables to NDJSON files, resumable from a state file.
    Extract(commands::extract::Args),
    /// Start the embedded Dataverse emulator and run a tour of the connector against it.
    Demo(commands::demo::Args),
    /// Serve the flow designer in the browser on a loopback port (until Ctrl-C). It starts the
    /// embedded Dataverse emulator too, unless --no-emulator.
    Designer(commands::designer::Args),
    /// Serve the Dataverse emulator on loopback until stopped (Ctrl-C).
    Emulator(commands::emulator::Args),
    /// Print the component.yaml manifest generated from the component's definitions.
    Manifest(commands::manifest::Args),
    /// Serve the actions as Model Context Protocol tools over stdio, for AI agents, with one
    /// connection; --read-only and --tables limit what they may do.
    Mcp(commands::mcp::Args),
}

fn main() -> ExitCode {
    // Output piped into `head` ends when the reader goes: leave quietly, as Unix tools do, instead
    // of panicking on the failed write (Rust ignores SIGPIPE by default).
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Actions(args) => args.run(&cli.global),
        Command::Describe(args) => args.run(&cli.global),
        Command::Invoke(args) => args.run(&cli.global),
        Command::Login(args) => args.run(&cli.global),
        Command::Status(args) => args.run(&cli.global),
        Command::Logout(args) => args.run(&cli.global),
        Command::TestConnection(args) => args.run(&cli.global),
        Command::ServeWebhooks(args) => args.run(&cli.global),
        Command::Poll(args) => args.run(&cli.global),
        Command::Extract(args) => args.run(&cli.global),
        Command::Demo(args) => args.run(&cli.global),
        Command::Designer(args) => args.run(&cli.global),
        Command::Emulator(args) => args.run(&cli.global),
        Command::Manifest(args) => args.run(&cli.global),
        Command::Mcp(args) => args.run(&cli.global),
    };
    match outcome {
        Ok(code) => code,
        // The README's promise: the connector's refusal or failure exits with 2, the host's own
        // (limits, files, ports) with 1.
        Err(problem) if problem.downcast_ref::<ActionFailed>().is_some() => {
            eprintln!("{problem:#}");
            ExitCode::from(2)
        }
        Err(problem) => {
            eprintln!("error: {problem:#}");
            ExitCode::from(1)
        }
    }
}
