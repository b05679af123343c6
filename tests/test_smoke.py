def test_a_consult_starts_pending_in_its_departments_queue(hospital, new_consult):
    consult = new_consult()
    assert consult["status"] == "pending"
    assert consult["owner"] is None
    queue = hospital.castillo.get("/api/consults?department=radiology&status=pending")
    assert [c["id"] for c in queue.json] == [consult["id"]]
