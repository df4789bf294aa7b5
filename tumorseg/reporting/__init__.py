"""Reports: ``tumorseg report``'s page on a run or a folder of predictions (``report``).

``sources`` finds what a page shows, ``scoring`` its scores, ``model``, ``metrics``, ``curves``
and ``cases`` build its sections as a ``document``, which ``html`` (one self-contained page) or
``markdown`` renders; ``slices`` and ``overlays`` draw the case panels.
"""
