-- failure path only: ratings.csv read again as text, for checks/ratings_first_problem (the view
-- ratings_text). record counts data rows from 1 in file order (blank lines are not rows)
select
    row_number() over () as record,
    *
from movielens_csv(
    $ratings_csv,
    {'userId': 'VARCHAR', 'movieId': 'VARCHAR', 'rating': 'VARCHAR', 'timestamp': 'VARCHAR'}
)
