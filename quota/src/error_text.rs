//! Errors as one line of text, for logs and answers.

/// `error` and each of its sources, joined: "could not connect: connection
/// refused" (reqwest, for one, hides the cause behind "error sending
/// request").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
