use std::process::ExitCode;

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
