//! JSONL replay: recorded events (ours, or Nextron aurora-linux's format) back into the pipeline.
pub mod time;
