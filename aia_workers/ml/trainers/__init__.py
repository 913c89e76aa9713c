"""The trainers: scikit-learn, PyTorch, statsmodels and NLTK models, AutoML and forecasting."""
