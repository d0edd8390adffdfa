use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    keep_large_allocations_out_of_the_heap();
    jeton::telemetry::init();
    match jeton::cli::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Argon2 allocates 19 MiB per password hash. glibc's dynamic mmap threshold
/// soon starts serving blocks that size from the heap, which it rarely
/// returns to the system, so a few logins would leave the server tens of MB
/// larger for good. A fixed threshold keeps large blocks mmapped, and
/// unmapped as soon as they are freed.
fn keep_large_allocations_out_of_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; it is called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}
