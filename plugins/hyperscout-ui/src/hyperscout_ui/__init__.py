"""hyperscout-ui: a local web app over a hyperscout store, and self-contained HTML reports.

``hyperscout ui [--storage DIR]`` serves the dashboard on 127.0.0.1; ``hyperscout report STUDY -o FILE``
writes the same plots and tables as one HTML file that opens offline.
"""

__version__ = "0.1.0"
