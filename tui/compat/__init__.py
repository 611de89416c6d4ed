"""tcall's hooks into Textual's private names (one module per library, like tcall.engine.compat)."""
