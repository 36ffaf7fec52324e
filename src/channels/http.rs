//! What Loa's own HTTP calls to providers share: reading an answer without trusting its size.

/// The most of an answer ever read: a provider's verdict is short, and a misbehaving one (an
/// error page, a log dump) must not fill the dispatcher's memory.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// An answer's body as text, at most [`MAX_ANSWER_BYTES`] of it.
pub struct Answer {
    pub text: String,
    /// Why the body stopped before its end (the connection dropped, the timeout passed): what
    /// was read is then only a part. `None` for a complete answer, or one cut at the bound.
    pub broken: Option<reqwest::Error>,
}

pub async fn read_answer(mut response: reqwest::Response) -> Answer {
    let mut bytes = Vec::new();
    let broken = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() >= MAX_ANSWER_BYTES {
                    bytes.truncate(MAX_ANSWER_BYTES);
                    break None;
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    Answer {
        text: String::from_utf8_lossy(&bytes).into_owned(),
        broken,
    }
}
