"""tcall's engine: everything that is not drawing. Never imports textual or tui."""
