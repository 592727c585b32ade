"""Reading a photo: face detection and 68 landmarks (dlib), apparent age."""
