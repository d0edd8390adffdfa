use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: a request allocates and frees dozens
/// of small blocks, and glibc spent a tenth of the server's time doing so
/// (its arena locks and fastbin consolidation, in `perf`); mimalloc's
/// thread-local free lists make that a few percent. It also returns freed
/// large blocks (Argon2's 19 MiB) to the system on its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    jeton::telemetry::init();
    match jeton::cli::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
