//! Bridge from the agent plane to the event bus (in progress).
