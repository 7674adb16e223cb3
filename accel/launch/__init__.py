"""The launcher: ``accel launch`` and ``notebook_launcher`` on torch's elastic launcher.

- :mod:`~accel.launch.arguments`: ``accel launch`` options up to the script, the rest untouched;
- :mod:`~accel.launch.plan`: resolved settings → a :class:`~accel.launch.plan.LaunchPlan`, checked
  before any process starts, and the one launch line;
- :mod:`~accel.launch.elastic`: the plan → torch's ``LaunchConfig`` and ``elastic_launch``;
- :mod:`~accel.launch.worker`: one rank running the user's script or module;
- :mod:`~accel.launch.failures`: a rank's failure recorded, and reported first failure first;
- :mod:`~accel.launch.notebook`: ``notebook_launcher`` on the same path.

Importing this package imports nothing else (ranks start lean; torch is imported on use).
"""
