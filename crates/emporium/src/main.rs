use std::process::ExitCode;

use clap::Parser;

// Every request allocates (headers, JSON, spans) on several threads; glibc's malloc showed as
// ~14% of the gateway's CPU in profiles, mimalloc's thread-local heaps make that a few percent.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = emporium::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(emporium::cli::run(cli))
}
