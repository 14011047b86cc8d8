//! JSONL replay (filled in by the replay stage).
