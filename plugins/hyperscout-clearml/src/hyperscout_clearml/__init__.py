"""ClearML support for hyperscout; ``fake_server``/``fake_agent`` are test doubles, never a real server."""
