"""The add-on's link to the backend process, without bpy: where things are (``settings``), the
JSON-RPC client (``client``), the session's one process (``session``), input checks and job
folders shared by the operators and the headless CLI (``jobs``)."""
