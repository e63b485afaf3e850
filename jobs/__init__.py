"""The job engine: state machine, runner threads, journal. No bpy here."""
