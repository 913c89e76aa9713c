"""The analysis agent's work: a dataset AIA holds, described, correlated, decomposed, regressed.

Heavy (pandas, statsmodels); imported inside ``AnalysisAgent.run``, never by the API.
"""
