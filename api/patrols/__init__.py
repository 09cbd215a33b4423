"""Patrols (巡查): recording tracks from phones and files, reading them, and patrol coverage."""
