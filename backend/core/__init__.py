"""What every stage shares: errors a user can act on, progress and cancellation, atomic job
files, image and EXR I/O, small image helpers. Imports nothing else of the backend."""
