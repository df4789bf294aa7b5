"""What combines several areas: plan-and-preprocess, find-best, the demo.

A workflow calls the API functions of the areas below it (planning, preprocessing, training,
inference, post-processing, evaluation, reporting) in the order a user would run the commands;
the CLI calls workflows or single areas, never the other way round.
"""
