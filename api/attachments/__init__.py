"""Photos of events: Pillow checks and cleaning (images), storage backends (storage), and who may
add and see them (service)."""
