"""tcall's terminal interfaces: the command line, the Textual app and the frame encoders."""
