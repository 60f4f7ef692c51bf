import Quality
import XCTest

/// Every filter with cases it must reject and cases it must let through.
final class FilterTests: XCTestCase {
    func conv(_ pairs: [(String, String)], type: String = "conversation", format: String = "conversation") -> QualitySample {
        var turns: [QualitySample.Turn] = []
        for (k, p) in pairs.enumerated() {
            turns.append(.init(from: "human", value: k == 0 ? "<image>\n" + p.0 : p.0))
            turns.append(.init(from: "gpt", value: p.1))
        }
        return QualitySample(id: 1, type: type, format: format, turns: turns)
    }

    let good = [("What animal is on the couch?", "A brown dog is lying on the couch next to a red pillow."),
                ("What is the dog doing?", "The dog is resting with its head on the armrest and looks relaxed.")]

    func testSourceLeak() {
        let f = SourceLeakFilter()
        XCTAssertNil(f.check(conv(good)))
        for leak in ["Based on the captions, a dog is on the couch.",
                     "The description given says that a dog sits there.",
                     "According to the bounding boxes there are two dogs.",
                     "The coordinates show the dog on the left.",
                     "The dog is at [0.12, 0.4, 0.5, 0.9] in the picture.",
                     "As the caption says, the dog sleeps."] {
            let r = f.check(conv([("What is there?", leak)]))
            XCTAssertNotNil(r, leak)
        }
        XCTAssertEqual(f.check(conv([("Where?", "It is at [0.12, 0.4, 0.5, 0.9].")]))?.contains("coordinate list [0.12, 0.4, 0.5, 0.9]"), true)
        // Near misses that are not leaks: "box" alone, a list of integers, "description" in ordinary use.
        XCTAssertNil(f.check(conv([("What is in the box?", "A cardboard box holds [1, 2] kittens and a toy.")])))
        XCTAssertNil(f.check(conv([("Describe the sign.", "The sign gives a short description of the trail ahead.")])))
    }

    func testRefusal() {
        let f = RefusalFilter()
        XCTAssertNil(f.check(conv(good)))
        for r in ["I'm sorry, but I can't see images.", "As an AI, I have no eyes.", "I cannot determine that from a photo.", "I’m sorry, there is no way to know."] {
            XCTAssertNotNil(f.check(conv([("What breed?", r)])), r)
        }
        // Only answers count; a question that says "sorry" is fine, and "cannot" without "I" is fine.
        XCTAssertNil(f.check(conv([("Sorry, what is that?", "It is a dog that cannot reach the ball.")])))
    }

    func testFormat() {
        let f = FormatFilter()
        XCTAssertNil(f.check(conv(good)))
        var noImage = conv(good); noImage.turns[0].value = "What animal is on the couch?"
        XCTAssertEqual(f.check(noImage), "0 <image> tokens (expected exactly 1)")
        var swapped = conv(good); swapped.turns.swapAt(0, 1)
        XCTAssertNotNil(f.check(swapped))
        XCTAssertNotNil(f.check(conv([("Q?", "Answer:\nA dog.")])))
        XCTAssertNotNil(f.check(conv(good, type: "reasoning", format: "single_qa")), "two pairs in a single_qa sample")
        XCTAssertNil(f.check(conv([good[0]], type: "reasoning", format: "single_qa")))
        XCTAssertNotNil(f.check(QualitySample(id: 1, type: "x", format: "conversation", turns: [])))
    }

    func testLength() {
        let f = LengthFilter(minWords: 5, maxWords: 30, perTypeMin: ["detail": 15])
        XCTAssertNil(f.check(conv([good[0]])))
        XCTAssertEqual(f.check(conv([("Color?", "Red.")])), "answers are 1 words (minimum 5)")
        XCTAssertNotNil(f.check(conv([("Tell me.", String(repeating: "word ", count: 31))])))
        XCTAssertNotNil(f.check(conv([good[0]], type: "detail", format: "description")), "per-type minimum of 15 applies (the answer has 12 words)")
    }

    func testUnanswered() {
        let f = UnansweredFilter()
        XCTAssertNil(f.check(conv(good)))
        XCTAssertNotNil(f.check(conv([("What is it?", "   ")])))
        XCTAssertNotNil(f.check(conv([("What is it?", "What do you think it is?")])))
        var trailing = conv(good); trailing.turns.removeLast()
        XCTAssertNotNil(f.check(trailing))
        // An answer that ends with a question after a statement still answers.
        XCTAssertNil(f.check(conv([("What is it?", "It is a dog. Isn't it cute?")])))
    }

    func testLanguage() {
        let f = EnglishFilter()
        XCTAssertNil(f.check(conv(good)))
        XCTAssertNotNil(f.check(conv([("¿Qué animal hay?", "Un perro marrón está acostado sobre el sofá junto a una almohada roja.")])))
        XCTAssertNotNil(f.check(conv([("这是什么动物？", "沙发上躺着一只棕色的狗，旁边有一个红色的枕头，它看起来很放松。")])))
        XCTAssertNotNil(f.check(conv([("Welches Tier?", "Ein brauner Hund liegt neben einem roten Kissen auf dem Sofa.")])))
        // Short English answers are not judged by the stopword ratio.
        XCTAssertNil(f.check(conv([("Color?", "Red.")])))
    }

    func testCountMismatch() {
        let f = CountConsistencyFilter()
        func s(_ answer: String, counts: [String: Int], crowd: Set<String> = []) -> QualitySample {
            var x = conv([("How many?", answer)]); x.boxCounts = counts; x.crowdCategories = crowd; return x
        }
        XCTAssertEqual(f.check(s("There are two dogs on the grass.", counts: ["dog": 3])),
                       "turn 2 says \"two dogs\" but the boxes list 3 dog")
        XCTAssertNil(f.check(s("There are three dogs on the grass.", counts: ["dog": 3])))
        XCTAssertNotNil(f.check(s("I see 2 brown dogs.", counts: ["dog": 3])), "digits and one adjective")
        XCTAssertNotNil(f.check(s("Two people stand by the bus.", counts: ["person": 3, "bus": 1])), "person → people")
        XCTAssertNil(f.check(s("Two wine glasses stand on the table.", counts: ["wine glass": 2])), "multi-word category, -es plural")
        XCTAssertNotNil(f.check(s("Three wine glasses stand on the table.", counts: ["wine glass": 2])))
        // Hedged, unrelated, uncheckable: left alone.
        XCTAssertNil(f.check(s("There are at least two dogs.", counts: ["dog": 3])))
        XCTAssertNil(f.check(s("There are two or three dogs.", counts: ["dog": 3])))
        XCTAssertNil(f.check(s("Two cats sit there.", counts: ["dog": 3])), "no cat boxes: not checkable")
        XCTAssertNil(f.check(s("Two people stand there.", counts: ["person": 3], crowd: ["person"])), "crowd boxes: not countable")
        XCTAssertNil(f.check(s("One dog is running while another sleeps.", counts: ["dog": 2])))
        XCTAssertNil(f.check(s("Two of the dogs are brown.", counts: ["dog": 3])))
    }

    func testCutAtMaxTokensRejectsOnlyRequestsThatEndedAtTheBudget() {
        let f = CutAtMaxTokensFilter()
        var cut = conv(good)
        cut.finishReason = "length"
        XCTAssertEqual(f.check(cut)?.contains("finish_reason=length"), true)
        cut.finishReason = "stop"
        XCTAssertNil(f.check(cut))
        cut.finishReason = nil
        XCTAssertNil(f.check(cut), "unknown finish reason (no request row): kept")
    }

    func testRepetitionCatchesLoopsAndLeavesProseAlone() {
        let f = RepetitionFilter()
        // The SmolLM2 failure: counting inside an answer.
        let counting = "The clock shows the time. Counting the marks: " + (96...156).map(String.init).joined(separator: ", ")
        XCTAssertEqual(f.check(conv([("What time is it?", counting)])), "turn 2 counts 96, 97 … 156 (61 numbers in a row)")
        XCTAssertNotNil(f.check(conv([("Count down.", (1...20).reversed().map(String.init).joined(separator: " "))])), "counting down")
        XCTAssertNotNil(f.check(conv([("Even?", (1...20).map { String($0 * 2) }.joined(separator: ", "))])), "a constant step of 2")
        // A phrase loop over a long text: few distinct 3-word sequences.
        let loop = String(repeating: "the dog is on the grass and ", count: 12) + "it sleeps."
        XCTAssertEqual(f.check(conv([("Describe.", loop)]))?.hasPrefix("turn 2 repeats itself: only "), true, f.check(conv([("Describe.", loop)])) ?? "")
        // One sentence again and again, or twice in a row.
        let sentence = "The man holds a red umbrella."
        XCTAssertEqual(f.check(conv([("What?", "\(sentence) It rains. \(sentence) The street is wet. \(sentence)")])),
                       "turn 2 says \"the man holds a red umbrella\" 3 times")
        XCTAssertEqual(f.check(conv([("What?", "It rains. \(sentence) \(sentence)")])), "turn 2 says \"the man holds a red umbrella\" twice in a row")
        // Questions are turns too.
        XCTAssertNotNil(f.check(conv([("\(sentence) \(sentence)", "Yes.")])))

        // Negatives: ordinary prose, a clock face's twelve numbers, short numbered steps, a long
        // varied answer, a short sentence repeated, and similar sentences in different turns.
        XCTAssertNil(f.check(conv(good)))
        XCTAssertNil(f.check(conv([("Which numbers?", "The clock face shows " + (1...12).map(String.init).joined(separator: ", ") + " in black.")])))
        XCTAssertNil(f.check(conv([("How?", "Step 1: open the lid. Step 2: pour the water. Step 3: wait 5 minutes.")])))
        let varied = """
            The kitchen is bright and tidy, with white cabinets along the left wall and a steel refrigerator in the corner. \
            A wooden table stands in the middle of the room, holding a bowl of oranges, two coffee mugs and a folded newspaper. \
            Sunlight falls through a window above the sink, where a potted basil plant sits next to a bottle of dish soap. \
            Three chairs surround the table; one of them has a blue cushion and another a jacket hanging on its back.
            """
        XCTAssertNil(f.check(conv([("Describe the image.", varied)])))
        XCTAssertNil(f.check(conv([("What?", "It is red. It is red. It is red.")])), "sentences under 4 words")
        XCTAssertNil(f.check(conv([("Is the dog brown?", "Yes, the dog is brown."), ("Is the dog big?", "Yes, the dog is brown and big.")])))
        XCTAssertNil(f.check(conv([("How many?", "There are 1 or 2 dogs, 3 cats and 4 birds.")])))
    }

    func testConfigBuildsSelectedFilters() {
        var c = FilterConfig()
        XCTAssertEqual(c.makeFilters().map(\.name), FilterConfig.allRules)
        c.rules = ["refusal", "language"]
        c.language = "any"
        XCTAssertEqual(c.makeFilters().map(\.name), ["refusal"])
    }
}
