"""The backend as a program: the JSON-RPC server Blender talks to (``server``: transport,
``methods``: what each method does), the command line (``cli``) and the benchmark (``bench``)."""
