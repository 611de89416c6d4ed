"""Media sources (camera, file, pattern, mic, sine) and sinks (latest frame, speaker), as aiortc tracks."""
