"""The screens of the tcall TUI: contacts, call, incoming call, settings, history and identity."""
