-- Where users stop in each checklist: per checklist and task of its published version, in
-- task order, how many users reached the task (completed every task before it), completed
-- it, and stopped there (it is the first task they have not completed). A user's sessions
-- of one checklist count together; preview sessions do not count. Users who completed every
-- task stopped nowhere.
-- Runs with the mirror schema (default `userflow`) as the search path.
WITH checklist_tasks AS (
    SELECT c.id AS content_id, c.name AS checklist, t.position, t.task_id, t.name AS task
    FROM content AS c
    JOIN content_tasks AS t ON t.version_id = c.published_version_id
    WHERE c.type = 'checklist'
),
participants AS (
    SELECT DISTINCT s.content_id, s.user_id
    FROM content_sessions AS s
    WHERE NOT s.is_preview AND s.user_id IS NOT NULL
      AND s.content_id IN (SELECT content_id FROM checklist_tasks)
),
done AS (
    SELECT DISTINCT s.content_id, s.user_id, tc.task_id
    FROM content_sessions AS s
    JOIN content_session_task_completions AS tc ON tc.session_id = s.id
    WHERE NOT s.is_preview AND s.user_id IS NOT NULL
),
progress AS (
    SELECT p.content_id, p.user_id, ct.position, ct.task_id, d.task_id IS NOT NULL AS completed
    FROM participants AS p
    JOIN checklist_tasks AS ct ON ct.content_id = p.content_id
    LEFT JOIN done AS d ON d.content_id = p.content_id AND d.user_id = p.user_id AND d.task_id = ct.task_id
),
stops AS (
    -- The first task a user has not completed; NULL when they completed them all.
    SELECT content_id, user_id, min(position) FILTER (WHERE NOT completed) AS stop_position
    FROM progress
    GROUP BY content_id, user_id
)
SELECT
    ct.content_id,
    ct.checklist,
    ct.position,
    ct.task_id,
    ct.task,
    count(pr.user_id) FILTER (WHERE st.stop_position IS NULL OR st.stop_position >= ct.position) AS reached,
    count(pr.user_id) FILTER (WHERE pr.completed) AS completed,
    count(pr.user_id) FILTER (WHERE st.stop_position = ct.position) AS stopped_here
FROM checklist_tasks AS ct
LEFT JOIN progress AS pr ON pr.content_id = ct.content_id AND pr.task_id = ct.task_id
LEFT JOIN stops AS st ON st.content_id = pr.content_id AND st.user_id = pr.user_id
GROUP BY ct.content_id, ct.checklist, ct.position, ct.task_id, ct.task
ORDER BY ct.checklist, ct.content_id, ct.position
