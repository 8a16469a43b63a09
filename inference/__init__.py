"""The model as a library: engine adapters, prompts and generation with timing.

It imports neither `chat` nor `helpdesk`; callers hand it plain data.
"""
